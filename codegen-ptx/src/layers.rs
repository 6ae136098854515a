//! The crate's layers, checked: each module may use only the modules below it, so the lowering and the
//! CUDA runtime read bottom-up and no two modules import each other. The test reads the sources.

/// Crate-level modules, bottom first (`runtime` and `check` are the top).
const CRATE: &[(&str, &str)] = &[
    ("error", include_str!("error.rs")),
    ("target", include_str!("target.rs")),
    ("layout", include_str!("layout.rs")),
    ("axis", include_str!("axis.rs")),
    ("lower", include_str!("lower/mod.rs")),
    ("compile", include_str!("compile.rs")),
    ("ptxas", include_str!("ptxas.rs")),
    ("check", include_str!("check.rs")),
];

/// The runtime's modules, bottom first. `launch`, `graph`, `timing` and `autotune` are methods and
/// tools of `CudaRuntime` itself (the top, `runtime/mod.rs`), so they may use it and everything below.
const RUNTIME: &[(&str, &str)] = &[
    ("error", include_str!("runtime/error.rs")),
    ("driver", include_str!("runtime/driver.rs")),
    ("device", include_str!("runtime/device.rs")),
    ("buffer", include_str!("runtime/buffer.rs")),
    ("args", include_str!("runtime/args.rs")),
    ("disk_cache", include_str!("runtime/disk_cache.rs")),
    ("jit", include_str!("runtime/jit.rs")),
];

/// The modules `prefix::NAME` that `src` names in code (comments and doc comments skipped).
fn uses<'a>(src: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = vec![];
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let name_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.push(&rest[..name_end]);
        }
    }
    out
}

fn check_layers(layers: &[(&str, &str)], prefix: &str, what: &str) {
    for (i, (name, src)) in layers.iter().enumerate() {
        for used in uses(src, prefix) {
            if let Some(j) = layers.iter().position(|(n, _)| *n == used) {
                assert!(j < i, "{what}: `{name}` uses `{prefix}{used}`, which is not below it (layers: {:?})", layers.iter().map(|l| l.0).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn crate_modules_are_layered() {
    check_layers(CRATE, "crate::", "codegen-ptx");
    // The lowering's own files use only the layers below `lower`, never `compile`, `check` or `runtime`.
    for (file, src) in [
        ("lower/memory.rs", include_str!("lower/memory.rs")),
        ("lower/mma.rs", include_str!("lower/mma.rs")),
        ("lower/exchange.rs", include_str!("lower/exchange.rs")),
        ("lower/pipeline.rs", include_str!("lower/pipeline.rs")),
        ("lower/elementwise.rs", include_str!("lower/elementwise.rs")),
        ("lower/remat.rs", include_str!("lower/remat.rs")),
    ] {
        for used in uses(src, "crate::") {
            assert!(["error", "target", "layout", "axis", "lower"].contains(&used), "{file} uses crate::{used}, which is above the lowering");
        }
    }
}

#[test]
fn runtime_modules_are_layered() {
    check_layers(RUNTIME, "super::", "codegen-ptx runtime");
    for (name, src) in RUNTIME {
        assert!(!uses(src, "super::").contains(&"CudaRuntime"), "runtime::{name} uses CudaRuntime (the top)");
        assert!(!uses(src, "crate::").iter().any(|u| ["check", "runtime"].contains(u)), "runtime::{name} uses a module above it");
    }
}
