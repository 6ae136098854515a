use dsl_core::prelude::*;

struct S;

impl S {
    #[kernel_fn]
    fn twice(self, x: Tile<f32>) -> Tile<f32> {
        x + x
    }
}

fn main() {}
