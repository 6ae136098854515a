use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    fn twice(v: Tile<f32>) -> Tile<f32> {
        v * 2.0
    }
    store(out, twice(load(x)));
}

fn main() {}
