use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = arange(0, n);
    store(out + offs, load(x + offs));
}

fn main() {}
