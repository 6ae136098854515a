use dsl_core::prelude::*;

#[kernel(instances(BLOCK in [64, 128]))]
fn k<const BLOCK: i32, const SCALE: bool>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = arange(0, BLOCK);
    store_masked(out + offs, load_masked(x + offs, offs < n, 0.0), offs < n);
}

fn main() {}
