use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let v = load(x);
    if n {
        store(out, v);
    }
}

fn main() {}
