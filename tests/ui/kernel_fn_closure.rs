use dsl_core::prelude::*;

#[kernel_fn]
fn twice(x: Tile<f32>) -> Tile<f32> {
    let f = |v: Tile<f32>| v + v;
    f(x)
}

fn main() {}
