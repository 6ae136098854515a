//! Attention for inference over a KV cache: grouped-query heads (each KV head serves `group` query
//! heads), the cache written by [`cache`], attended by [`prefill`] (a chunk of new queries, causal) and
//! [`decode`] (one query per sequence, the context split over programs).
//!
//! **Cache layout**: `K` and `V` caches are `[batch, kv_heads, max_ctx, head_dim]`, `head_dim`
//! contiguous. One (sequence, KV head) is then one contiguous `max_ctx x head_dim` block: a
//! `BLOCK_N x head_dim` key tile is one contiguous run of bytes (full 128-byte lines, 16-byte vector
//! loads), and every query head of the group uses that tile from registers, so each key and value is
//! read from memory once per program. An append writes one `head_dim` row per (token, KV head).
//!
//! **Query heads**: query head `h * group + g` uses KV head `h` (Llama's and transformers' order).
//!
//! **fp8 caches**: the caches may hold e4m3 (or e5m2) instead of the activations' type, half the bytes
//! a decode step reads. Each key's and each value's row `[b, h, pos, :]` is stored divided by its own
//! scale, the row's largest magnitude over the type's largest value, kept in f32 arrays `[batch,
//! kv_heads, max_ctx]` beside the caches ([`cache::kv_append_scaled`]). A scale per row rather than per
//! head or tensor needs no calibration and follows keys whose size changes by orders of magnitude
//! between positions; it adds 4 bytes to each 64–256-byte row. Decode and prefill widen the rows to
//! the activations' type (exactly), put each key's scale on its scores and each value's on its
//! probabilities ([`softmax::online_softmax_step`]).

pub mod cache;
pub mod decode;
pub mod prefill;
pub mod qkv_combine;
pub mod qkv_matvec;
pub mod softmax;

use dsl_core::runtime::AnyBuffer;
use dsl_core::types::Elem;

/// The caches' shape, shared by the append, prefill and decode kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheShape {
    pub batch: usize,
    pub kv_heads: usize,
    /// Query heads per KV head (1 to 16).
    pub group: usize,
    /// 2 to 256, even (a smaller head is padded to the 16-wide tiles of the tensor cores, masked).
    pub head_dim: usize,
    /// The caches' capacity in keys per sequence.
    pub max_ctx: usize,
}

impl CacheShape {
    /// The `BLOCK_D` of every kernel here: the power of two covering `head_dim`, at least 16.
    pub fn block_d(&self) -> i32 {
        self.head_dim.next_power_of_two().max(16) as i32
    }

    /// Query heads per sequence.
    pub fn q_heads(&self) -> usize {
        self.kv_heads * self.group
    }

    /// Elements of each cache (`batch * kv_heads * max_ctx * head_dim`).
    pub fn cache_len(&self) -> usize {
        self.batch * self.kv_heads * self.max_ctx * self.head_dim
    }

    /// The limits every kernel here shares: a non-empty problem, `group` 1 to 16, `head_dim` even, 2 to 256,
    /// caches addressable with 32-bit offsets.
    pub fn check<E: std::error::Error>(&self) -> Result<(), AttnError<E>> {
        let CacheShape { batch, kv_heads, group, head_dim, max_ctx } = *self;
        if batch == 0 || kv_heads == 0 || max_ctx == 0 {
            return Err(AttnError::Shape(format!("empty problem: batch {batch}, kv_heads {kv_heads}, max_ctx {max_ctx}")));
        }
        if !(1..=16).contains(&group) {
            return Err(AttnError::Shape(format!("group {group} (query heads per KV head) must be 1 to 16")));
        }
        if !(2..=256).contains(&head_dim) || head_dim % 2 != 0 {
            return Err(AttnError::Shape(format!("head_dim {head_dim} must be even, 2 to 256")));
        }
        let cache = self.cache_len();
        if cache > i32::MAX as usize {
            return Err(AttnError::Shape(format!("the caches hold {cache} elements, over the 2^31 that 32-bit offsets address")));
        }
        Ok(())
    }
}

/// A call the host API refuses (before any launch), or the runtime's error.
#[derive(Debug, thiserror::Error)]
pub enum AttnError<E: std::error::Error> {
    #[error("attention: {0}")]
    Shape(String),
    #[error("attention: {what} needs at least {need} elements, its buffer has {len}")]
    TooSmall { what: &'static str, need: usize, len: usize },
    #[error(transparent)]
    Runtime(E),
}

/// The scales of an fp8 cache (`C` other than `T`, [`softmax::kv_scaled`]): `batch * kv_heads *
/// max_ctx` each, and only the fp8 types. A cache of `T` reads none.
pub(crate) fn check_scales<E: std::error::Error, T: Elem, C: Elem>(shape: &CacheShape, k: &impl AnyBuffer, v: &impl AnyBuffer) -> Result<(), AttnError<E>> {
    if !softmax::kv_scaled::<T, C>() {
        return Ok(());
    }
    if !C::DTYPE.is_fp8() {
        return Err(AttnError::Shape(format!("a cache of {} for {} values: a scaled cache holds e4m3 or e5m2", C::DTYPE, T::DTYPE)));
    }
    let n = shape.batch * shape.kv_heads * shape.max_ctx;
    need("k_scales", k, n)?;
    need("v_scales", v, n)
}

/// Refuses a buffer shorter than `need` elements.
pub(crate) fn need<E: std::error::Error>(what: &'static str, buf: &impl AnyBuffer, need: usize) -> Result<(), AttnError<E>> {
    if buf.len() < need {
        return Err(AttnError::TooSmall { what, need, len: buf.len() });
    }
    Ok(())
}
