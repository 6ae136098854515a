use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let mut i = program_id(0);
    while i < n {
        i = i + 1;
    }
}

fn main() {}
