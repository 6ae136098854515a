//! Elementwise kernels: vector add and the SiLU-gated product of Llama's MLP.

use dsl_core::prelude::*;

/// `out[i] = x[i] + y[i]` for `i < n`; one program handles `BLOCK` elements.
#[kernel]
pub fn add<const BLOCK: i32>(x: Ptr<f32>, y: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    let a = load_masked(x + offs, mask, 0.0);
    let b = load_masked(y + offs, mask, 0.0);
    store_masked(out + offs, a + b, mask);
}

/// `out[i] = silu(gate[i]) * up[i]` with `silu(x) = x * sigmoid(x)`, computed in f32 and stored as `T`.
#[kernel]
pub fn silu_mul<T: Float, const BLOCK: i32>(gate: Ptr<T>, up: Ptr<T>, out: MutPtr<T>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    let g = load_masked(gate + offs, mask, 0.0).to::<f32>();
    let u = load_masked(up + offs, mask, 0.0).to::<f32>();
    store_masked(out + offs, (silu(g) * u).to::<T>(), mask);
}

/// `x * sigmoid(x)`.
#[kernel_fn]
pub fn silu(x: Tile<f32>) -> Tile<f32> {
    x * sigmoid(x)
}

/// `out[i] = x[i]` for `i < n`, bit for bit, for any element type but `bool`; one program copies `BLOCK`
/// elements. (The memory-bandwidth yardstick of the benchmarks.)
#[kernel]
pub fn copy<T: dsl_core::lang::Numeric, const BLOCK: i32>(x: Ptr<T>, out: MutPtr<T>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    store_masked(out + offs, load_masked(x + offs, mask, 0), mask);
}
