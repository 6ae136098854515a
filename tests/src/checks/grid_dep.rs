//! Grid dependency control (`gdc_wait`, `gdc_launch_dependents`, `prefetch_l2`): a chain of dependent
//! launches, each reading what the one before it wrote, must give exact results however the launches
//! overlap (under programmatic dependent launch on a GPU; one after another elsewhere).

use super::*;
use dsl_core::prelude::*;

cases!("grid_dep": chained_adds);

/// `out = x + w` where `w` is a weight that the kernel ahead never writes: the kernel releases the next
/// one, prefetches `w`, waits for the kernel ahead (which wrote `x`), then computes.
#[kernel]
pub fn overlapped_add<const BLOCK: i32>(x: Ptr<f32>, w: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let m = offs < n;
    gdc_launch_dependents();
    prefetch_l2(w + offs, m);
    gdc_wait();
    store_masked(out + offs, load_masked(x + offs, m, 0.0) + load_masked(w + offs, m, 0.0), m);
}

/// Pairs of launches after the first in [`launch_chain`].
const PAIRS: usize = 16;
/// How many dependent launches [`launch_chain`] makes.
pub const CHAIN: usize = 1 + 2 * PAIRS;
/// Elements (ragged against the kernel's block of 1024).
pub const CHAIN_N: usize = 5000;
const PAD: usize = 24;

/// `a = x + w`, then `b = a + w`, `a = b + w`, ... ([`CHAIN`] launches, no wait between them): `a` ends
/// as `x + CHAIN * w`. Buffers hold `CHAIN_N` elements or more.
pub fn launch_chain<R: Runtime>(rt: &R, x: &R::Buffer<f32>, w: &R::Buffer<f32>, a: &mut R::Buffer<f32>, b: &mut R::Buffer<f32>) -> Result<(), R::Error> {
    let (grid, n) = (CHAIN_N.div_ceil(1024) as u32, CHAIN_N as i32);
    overlapped_add::<1024>::launch(rt, grid, x, w, a, n)?;
    for _ in 0..PAIRS {
        overlapped_add::<1024>::launch(rt, grid, a, w, b, n)?;
        overlapped_add::<1024>::launch(rt, grid, b, w, a, n)?;
    }
    Ok(())
}

/// Small integers, so that every sum of the chain is exact in f32.
pub fn chain_inputs(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let mut ints = |lo: i32, hi: i32| (0..CHAIN_N + PAD).map(|_| r.gen_range(lo..=hi) as f32).collect::<Vec<_>>();
    (ints(-1000, 1000), ints(-8, 8))
}

/// Checks `a` (`[CHAIN_N + PAD]`, poison expected past `CHAIN_N`) against `x + CHAIN * w`.
pub fn check_chain(what: &str, a: &[f32], x: &[f32], w: &[f32]) {
    let got: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    for i in 0..CHAIN_N {
        let want = x[i] as f64 + CHAIN as f64 * w[i] as f64;
        assert!(got[i] == want, "{what}: element {i} is {} after {CHAIN} chained launches, want {want}", got[i]);
    }
    assert_poison_kept(what, &got, |i| i < CHAIN_N);
}

/// [`CHAIN`] dependent launches of [`overlapped_add`] on fresh inputs, twice over the same buffers.
pub fn chained_adds<R: Runtime>(rt: &R) {
    let mut a = poisoned::<R, f32>(rt, CHAIN_N + PAD);
    let mut b = poisoned::<R, f32>(rt, CHAIN_N + PAD);
    for round in 0..2 {
        let (x, w) = chain_inputs(980 + round);
        let (bx, bw) = (upload(rt, &x), upload(rt, &w));
        launched("overlapped_add chain", launch_chain(rt, &bx, &bw, &mut a, &mut b));
        check_chain(&format!("round {round}"), &download(rt, &a), &x, &w);
    }
}
