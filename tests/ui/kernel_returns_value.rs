use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr<f32>) -> Tile<f32> {
    load(x)
}

fn main() {}
