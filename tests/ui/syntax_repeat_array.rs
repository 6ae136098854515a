use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let a = [0.0f32; 4];
}

fn main() {}
