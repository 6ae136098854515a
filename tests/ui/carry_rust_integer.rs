use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let mut count = 0;
    for i in 0..n {
        count = count + 1;
    }
    store(out, load(x + count));
}

fn main() {}
