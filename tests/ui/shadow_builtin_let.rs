use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let load = arange(0, BLOCK);
    store(out + load, 0.0);
}

fn main() {}
