use dsl_core::prelude::*;

#[kernel]
fn k(t: Tile<f32>, out: MutPtr<f32>) {
    store(out, t);
}

fn main() {}
