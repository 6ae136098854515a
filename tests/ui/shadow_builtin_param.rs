use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, arange: i32) {
    store(out, load(x));
}

fn main() {}
