use dsl_core::prelude::*;

#[kernel]
fn scale<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    store_masked(out + offs, load_masked(x + offs, mask, 0.0) * 2.0, mask);
}

fn main() {
    let rt = Interpreter::new();
    let x = HostBuffer::<f32>::filled(256, 0.0);
    let out = HostBuffer::<f32>::filled(256, 0.0);
    scale::<256>::launch(&rt, 1, &x, &out, 256).unwrap();
}
