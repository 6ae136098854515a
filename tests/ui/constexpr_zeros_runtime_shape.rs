use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let acc = zeros::<f32>([n]);
    store(out + arange(0, 16), acc);
}

fn main() {}
