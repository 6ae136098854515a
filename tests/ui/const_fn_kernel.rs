use dsl_core::prelude::*;

#[kernel]
const fn k(x: Ptr<f32>, out: MutPtr<f32>) {
    store(out, load(x));
}

fn main() {}
