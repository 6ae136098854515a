use dsl_core::prelude::*;

#[kernel]
fn k(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let mut scale = 1;
    if program_id(0) < n {
        scale = 2;
    }
    store(out, load(x) * scale);
}

fn main() {}
