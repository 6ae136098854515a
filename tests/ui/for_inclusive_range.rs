use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    for i in 0..=n {
        store(out + i, load(x + i));
    }
}

fn main() {}
