use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let v = match BLOCK {
        0 => 0.0,
        _ => 1.0,
    };
    store(out, v);
}

fn main() {}
