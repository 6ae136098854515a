use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = arange(0, BLOCK);
    store(out + offs, foo_bar(load(x + offs)));
}

fn main() {}
