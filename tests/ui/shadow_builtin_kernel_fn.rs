use dsl_core::prelude::*;

#[kernel_fn]
fn load(x: Tile<f32>) -> Tile<f32> {
    x
}

fn main() {}
