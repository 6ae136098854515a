use dsl_core::prelude::*;

#[kernel]
fn k<const SCALE: f32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    store(out, load(x) * SCALE);
}

fn main() {}
