use dsl_core::prelude::*;

#[kernel]
fn k(a: Ptr<f16>, b: Ptr<bf16>, out: MutPtr<f32>) {
    let offs = arange(0, 16).expand_dims(1) * 16 + arange(0, 16).expand_dims(0);
    let acc = dot(load(a + offs), load(b + offs), zeros::<f32>([16, 16]));
    store(out + offs, acc);
}

fn main() {}
