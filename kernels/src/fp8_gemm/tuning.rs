//! Autotuning of the fp8 GEMM as plain data (the runtime times it; `codegen_ptx::runtime::autotune`):
//! winners are filed per M bucket (one tuner per bucket, [`tuner_name`]), under the key
//! `M=..,N=..,K=..` ([`key`]); each bucket has its candidates ([`candidates`]): split-K grids and, for
//! small M, stream-K and split-K grids with the combine fused (`fused_combine=1`), each with 3 or 4
//! pipeline stages. A config converts to the [`GemmConfig`] the host
//! API takes ([`gemm_config`]), and names the kernel it runs ([`main_spec`], whose fingerprint ties a
//! committed winner to the kernel's code).
//!
//! On a GPU with no committed winner for its name, callers use [`heuristic`](super::heuristic): a search
//! runs only when asked for (`gpu-check fp8`), never inside a user's run.

use super::{GemmConfig, ScaledMmFusedCombineInstance, ScaledMmInstance, ScaledMmStreamkInstance, ScaledMvInstance};
use dsl_core::lang::{DotOperands, Numeric};
use dsl_core::runtime::{KernelSpec, LaunchOptions};
use dsl_core::tune::{key_of, Config};
use dsl_core::CompileError;

/// The committed winners (`bench/fp8_gemm/tuned.tsv`, written by `gpu-check fp8 --write` on a GPU;
/// CI checks that each still matches its kernel), for callers that look winners up (the Llama GPU
/// backend) and for the tuning bench.
pub const COMMITTED_FILE: &str = "bench/fp8_gemm/tuned.tsv";
pub const COMMITTED: &str = include_str!("../../../bench/fp8_gemm/tuned.tsv");

/// The M bucket a problem is tuned in.
pub fn bucket(m: usize) -> &'static str {
    match m {
        0..=16 => "M<=16",
        17..=32 => "M<=32",
        33..=64 => "M<=64",
        65..=256 => "M<=256",
        _ => "M>256",
    }
}

/// The name winners of M bucket `bucket(m)` are filed under, for operand and output types named
/// `types` (e.g. `"e4m3,bf16"`).
pub fn tuner_name(types: &str, m: usize) -> String {
    format!("fp8_gemm<{types}>/{}", bucket(m))
}

/// The key of one problem: `M=..,N=..,K=..`, each rounded up to a power of two.
pub fn key(m: usize, n: usize, k: usize) -> String {
    key_of(&[("M", m as i64), ("N", n as i64), ("K", k as i64)])
}

/// The tiles tried in M bucket `bucket(m)` (a choice among the declared tiles; a unit test keeps them
/// declared), and the split-K factors.
fn bucket_tiles(m: usize) -> (&'static [(i64, i64, i64)], &'static [i64]) {
    match m {
        0..=16 => (&[(16, 32, 256), (16, 64, 256), (16, 128, 128), (16, 64, 512)], &[1, 2, 4, 8]),
        17..=32 => (&[(32, 32, 256), (32, 64, 256), (32, 32, 512), (64, 64, 128)], &[1, 2, 4, 8]),
        33..=64 => (&[(64, 64, 128), (32, 64, 256), (64, 128, 128)], &[1, 2, 4, 8]),
        65..=256 => (&[(64, 128, 128), (128, 128, 64), (64, 64, 128)], &[1, 2, 4]),
        _ => (&[(128, 128, 64), (128, 128, 32), (64, 128, 128)], &[1]),
    }
}

fn tile_config(&(bm, bn, bk): &(i64, i64, i64)) -> Config {
    Config::new(&[("BLOCK_M", bm), ("BLOCK_N", bn), ("BLOCK_K", bk)])
}

/// The candidates of M bucket `bucket(m)`: for M <= 64, stream-K over 1-3 programs per SM of a 132-SM
/// GPU with the bucket's first two tiles (where stream-K declares them); then every tile with every
/// split-K factor; each with 3 and 4 stages, 4 warps (and 8 for 128x128 tiles at large M).
pub fn candidates(m: usize) -> Vec<Config> {
    let (tiles, splits) = bucket_tiles(m);
    let mut v = vec![];
    if m <= 64 {
        let streamed = super::stream_k_tiles();
        for t in tiles[..2].iter().filter(|&&(bm, bn, bk)| streamed.contains(&(bm as u32, bn as u32, bk as u32))) {
            for programs in [132, 264, 396] {
                for stages in [3, 4] {
                    v.push(tile_config(t).with("stream_k", programs).with("num_warps", 4).with("num_stages", stages));
                }
            }
        }
    }
    for t @ &(bm, bn, _) in tiles {
        for &split in splits {
            for stages in [3, 4] {
                let warps: &[i64] = if bm * bn >= 128 * 128 && m > 256 { &[4, 8] } else { &[4] };
                for &w in warps {
                    v.push(tile_config(t).with("split_k", split).with("num_warps", w).with("num_stages", stages));
                }
            }
        }
    }
    // The same splits combined by their last program, where the fused kernel declares the tile.
    let fused = super::fused_combine_tiles();
    for t in tiles.iter().filter(|&&(bm, bn, bk)| fused.contains(&(bm as u32, bn as u32, bk as u32))) {
        for &split in splits.iter().filter(|&&s| s > 1) {
            for stages in [3, 4] {
                v.push(tile_config(t).with("split_k", split).with("fused_combine", 1).with("num_warps", 4).with("num_stages", stages));
            }
        }
    }
    v
}

/// The [`GemmConfig`] a tuning config names: blocks, `split_k` (default 1) or `stream_k` programs, and
/// the launch options (`num_warps`, `num_stages`). A value out of range is an error.
pub fn gemm_config(c: &Config) -> Result<GemmConfig, String> {
    let get = |k: &str, default: i64| -> Result<u32, String> {
        let v = c.get(k).unwrap_or(default);
        u32::try_from(v).map_err(|_| format!("config {c}: {k}={v} is out of range"))
    };
    let block = |k: &str| c.get(k).ok_or_else(|| format!("config {c} has no {k}")).and_then(|_| get(k, 0));
    Ok(GemmConfig {
        block_m: block("BLOCK_M")?,
        block_n: block("BLOCK_N")?,
        block_k: block("BLOCK_K")?,
        split_k: get("split_k", 1)?,
        stream_k: get("stream_k", 0)?,
        fused_combine: get("fused_combine", 0)? == 1,
        options: LaunchOptions::from_config(c)?,
    })
}

/// The main kernel a config runs, for its fingerprint: the raw-partial split-K instance (split-K and
/// the epilogue flags do not change the main loop, so it stands for all of them), the fused-combine
/// one (without epilogue flags), or the stream-K one.
pub fn main_spec<A, B>(c: &Config) -> Result<KernelSpec, CompileError>
where
    A: Numeric + DotOperands<B> + 'static,
    B: Numeric + 'static,
{
    let g = gemm_config(c).map_err(|message| CompileError { kernel: "fp8_gemm".into(), loc: dsl_core::ir::Loc::UNKNOWN, message })?;
    let (block_m, block_n, block_k) = (g.block_m as i32, g.block_n as i32, g.block_k as i32);
    if g.is_matvec() {
        let (col_scale, bias, accumulate) = (false, false, false);
        ScaledMvInstance { block_n, block_k, norm: false, col_scale, bias, accumulate }.spec::<A, B, f32>()
    } else if g.stream_k > 0 {
        ScaledMmStreamkInstance { block_m, block_n, block_k }.spec::<A, B>()
    } else if g.fused_combine {
        let (row_scale, col_scale, bias, accumulate) = (false, false, false, false);
        ScaledMmFusedCombineInstance { block_m, block_n, block_k, row_scale, col_scale, bias, accumulate }.spec::<A, B, f32>()
    } else {
        let (row_scale, col_scale, bias, epilogue, atomic) = (false, false, false, false, false);
        ScaledMmInstance { block_m, block_n, block_k, row_scale, col_scale, bias, epilogue, atomic }.spec::<A, B, f32>()
    }
}

/// `16x64x256 split 2` or `16x64x256 stream-K 264`.
pub fn describe(c: &GemmConfig) -> String {
    match c.stream_k {
        0 if c.is_matvec() => format!("matvec {} rows x {}", c.block_n, c.block_k),
        0 if c.fused_combine => format!("{}x{}x{} split {} fused", c.block_m, c.block_n, c.block_k, c.split_k),
        0 => format!("{}x{}x{} split {}", c.block_m, c.block_n, c.block_k, c.split_k),
        p => format!("{}x{}x{} stream-K {p}", c.block_m, c.block_n, c.block_k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl_core::types::e4m3;

    /// Every candidate of every bucket is a declared instance (it builds its kernel and converts to a
    /// `GemmConfig` with its launch options).
    #[test]
    fn every_candidate_is_declared() {
        for m in [1, 17, 33, 65, 257] {
            let cs = candidates(m);
            assert!(!cs.is_empty());
            for c in &cs {
                let g = gemm_config(c).unwrap();
                assert_eq!(g.options.num_stages, c.get("num_stages").map(|s| s as u32), "{c}");
                main_spec::<e4m3, e4m3>(c).unwrap_or_else(|e| panic!("{c}: {e}"));
            }
        }
    }
}
