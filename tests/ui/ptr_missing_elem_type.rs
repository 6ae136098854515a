use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr, out: MutPtr<f32>) {
    store(out, 0.0);
}

fn main() {}
