fn main() {
    eprintln!("llama: the runtime is not built yet (issue 6)");
    std::process::exit(2);
}
