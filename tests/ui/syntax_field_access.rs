use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let p = (load(x), load(x + 1));
    store(out, p.0);
}

fn main() {}
