use dsl_core::prelude::*;

#[kernel]
fn k<'a>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    store(out, load(x));
}

fn main() {}
