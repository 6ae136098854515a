//! Greedy sampling on the device: the index of each row's largest value (the first one on ties, as the
//! host's `argmax`), so that a decode step hands back one token id instead of a row of logits.
//!
//! Two kernels, so a 128k-entry row is read by many programs at once: [`argmax_chunks`] reduces each
//! `BLOCK`-wide chunk of a row to its maximum and that maximum's index, and [`argmax_finish`] reduces
//! the chunks of a row. [`argmax_rows`] launches both.

use dsl_core::prelude::*;
use dsl_core::runtime::Runtime;

/// Elements per program of the first stage.
pub const CHUNK: usize = 1024;
/// Partials per step of the second stage.
const FINISH_BLOCK: i32 = 128;

/// Stage 1: `part_v[r, c]` = the largest of `x[r, c * BLOCK .. (c + 1) * BLOCK]` (cut at `n`) and
/// `part_i[r, c]` its first index in the row.
///
/// - Grid: `(rows, cdiv(n, BLOCK))`; `x` is `[rows, n]`; the partials are `[rows, cdiv(n, BLOCK)]`.
#[kernel]
pub fn argmax_chunks<const BLOCK: i32>(x: Ptr<f32>, n: i32, part_v: MutPtr<f32>, part_i: MutPtr<i32>) {
    gdc_launch_dependents();
    gdc_wait();
    let r = program_id(0).to::<i64>();
    let c = program_id(1);
    let chunks = num_programs(1);
    let offs = c * BLOCK + arange(0, BLOCK);
    let v = load_masked(x + r * n + offs, offs < n, f32::NEG_INFINITY);
    let slot = r * chunks + c;
    store(part_v + slot, max(v, 0));
    store(part_i + slot, c * BLOCK + argmax(v, 0));
}

/// Stage 2: `out[r]` = the index of row `r`'s largest value, from its `chunks` partials (the first one
/// of equal maxima: chunks are in row order and each partial is its chunk's first).
///
/// - Grid: `rows`.
#[kernel]
pub fn argmax_finish<const BLOCK: i32>(part_v: Ptr<f32>, part_i: Ptr<i32>, chunks: i32, out: MutPtr<i32>) {
    gdc_launch_dependents();
    gdc_wait();
    let r = program_id(0).to::<i64>();
    let mut best = full::<f32>([BLOCK], f32::NEG_INFINITY);
    let mut best_i = full::<i32>([BLOCK], i32::MAX);
    for c0 in (0..chunks).step_by(BLOCK) {
        let offs = c0 + arange(0, BLOCK);
        let ok = offs < chunks;
        let v = load_masked(part_v + r * chunks + offs, ok, f32::NEG_INFINITY);
        let i = load_masked(part_i + r * chunks + offs, ok, i32::MAX);
        // Strictly greater: an earlier chunk in the same lane keeps a tie.
        let take = v > best;
        best = where_(take, v, best);
        best_i = where_(take, i, best_i);
    }
    let m = max(best, 0);
    store(out + r, min(where_(best == m, best_i, i32::MAX), 0));
}

/// The partial buffers' length for `rows` rows of `n` values.
pub fn partials_len(rows: usize, n: usize) -> usize {
    rows * n.div_ceil(CHUNK)
}

/// `out[r] = argmax(x[r, ..n])` for `r < rows` (first index on ties), through `part_v`/`part_i` of at
/// least [`partials_len`] entries.
pub fn argmax_rows<R: Runtime>(
    rt: &R,
    x: &R::Buffer<f32>,
    rows: usize,
    n: usize,
    part_v: &mut R::Buffer<f32>,
    part_i: &mut R::Buffer<i32>,
    out: &mut R::Buffer<i32>,
) -> Result<(), R::Error> {
    let chunks = n.div_ceil(CHUNK);
    argmax_chunks::<{ CHUNK as i32 }>::launch(rt, (rows as u32, chunks as u32), x, n as i32, part_v, part_i)?;
    argmax_finish::<FINISH_BLOCK>::launch(rt, rows as u32, part_v, part_i, chunks as i32, out)
}
