use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let v = vec![1.0f32];
    store(out, load(x));
}

fn main() {}
