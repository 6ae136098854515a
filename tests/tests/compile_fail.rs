//! Programs the kernel language must reject, with the diagnostics pinned in `ui/*.stderr`.

#[test]
fn compile_fail() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
