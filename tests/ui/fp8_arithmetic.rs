use dsl_core::prelude::*;

#[kernel]
fn k<const BLOCK: i32>(x: Ptr<e4m3>, out: MutPtr<f32>) {
    let offs = arange(0, BLOCK);
    let a = load(x + offs);
    store(out + offs, (a * a).to::<f32>());
}

fn main() {}
