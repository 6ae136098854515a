//! Hashes this crate's source and dsl-core's (the IR whose op table steers the lowering) into
//! `CODEGEN_SOURCE_HASH`, a part of the JIT disk cache's key: a build whose code generator differs
//! (same crate version or not) never reads PTX another one wrote.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let mut paths = vec![];
    for dir in ["src", "../dsl-core/src"] {
        println!("cargo:rerun-if-changed={dir}");
        files(Path::new(dir), &mut paths);
    }
    paths.sort();
    // FNV-1a, 64 bits: deterministic across builds and platforms, and no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for p in &paths {
        eat(p.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(&std::fs::read(p).unwrap_or_default());
        eat(&[0]);
    }
    println!("cargo:rustc-env=CODEGEN_SOURCE_HASH={h:016x}");
}
