//! Random tensors made on the device: for benchmarks of a model's architecture with no weight file
//! (`llama bench --arch llama-3-70b` needs 70 GB of weights, which the host would take minutes to make
//! and copy). The values come from a hash of `(seed, index)`, so they are the same on every backend.

use dsl_core::prelude::*;

/// `out[i] = scale * u(seed, i)` for `i < n`, rounded to `T`, where `u` is uniform on `[-1, 1)` with
/// 24 random bits: the index, mixed with the seed, through a 32-bit integer hash.
///
/// - Grid: `cdiv(n, BLOCK)` (so `n` is below 2^31).
#[kernel]
pub fn fill_uniform<T: Numeric, const BLOCK: i32>(out: MutPtr<T>, n: i32, seed: u32, scale: f32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mut h = offs.to::<u32>() * 2654435769u32 ^ seed;
    h = h ^ (h >> 16u32);
    h = h * 2146121005u32;
    h = h ^ (h >> 15u32);
    h = h * 2221713035u32;
    h = h ^ (h >> 16u32);
    let u = (h >> 8u32).to::<f32>() * (2.0 / 16777216.0) - 1.0;
    store_masked(out + offs, (u * scale).to::<T>(), offs < n);
}

/// The host's twin of [`fill_uniform`]'s values before rounding (for tests).
pub fn uniform_value(seed: u32, i: u32, scale: f32) -> f32 {
    let mut h = i.wrapping_mul(2654435769) ^ seed;
    h ^= h >> 16;
    h = h.wrapping_mul(2146121005);
    h ^= h >> 15;
    h = h.wrapping_mul(2221713035);
    h ^= h >> 16;
    ((h >> 8) as f32 * (2.0 / 16777216.0) - 1.0) * scale
}
