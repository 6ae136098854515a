use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = arange(0, BLOCK);
    for o in offs.iter() {
        store(out + o, 0.0);
    }
}

fn main() {}
