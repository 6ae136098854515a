//! The online softmax's key step (FlashAttention-2's loop body), shared by [`super::prefill`] and
//! [`super::decode`].

use dsl_core::lang::DotOperands;
use dsl_core::prelude::*;
use dsl_core::types::{DType, Elem};

/// Whether a cache of `C` elements holds scaled values of `T` (an fp8 cache: each key's and value's
/// row stored divided by its own f32 scale, [`super::cache`]) rather than `T` itself. Decided when the
/// kernel is traced: a cache of `T` reads no scales.
pub fn kv_scaled<T: Elem, C: Elem>() -> bool {
    T::DTYPE != C::DTYPE
}

/// The largest finite value of fp8 type `C` (e4m3 448, e5m2 57344): an fp8 cache row's scale is its
/// largest magnitude over this ([`super::cache::scaled_row`]).
pub fn fp8_max<C: Elem>() -> f32 {
    match C::DTYPE {
        DType::F8E5M2 => 57344.0,
        _ => 448.0,
    }
}

/// One step of keys for rows of queries: `x` the raw scores `q · kᵀ` of the step (`-inf` where masked),
/// `v_cache + kv_offs` the step's values (loaded where `kv_mask`, 0 elsewhere), `(m_i, l_i, acc)` the
/// running max, sum and unnormalized output; returns them updated. For a scaled cache
/// ([`kv_scaled`]), `v_scale` (`[1, BLOCK_N]`) holds each key's value scale, applied to `p` before
/// `P · V` (the values are widened to `T` exactly); otherwise it is not read. The scale is taken times
/// `C`'s largest value (its row's largest magnitude) and `l` times that constant too, which cancels in
/// `acc / l` and in the split combine: `p · scale` alone is as small as `2^-9 · p` of the row's range and
/// would fall among f16's subnormals for rows under about 0.01.
///
/// Scores are taken in base 2, `2^(scale2 · x - m)` with `scale2 = scale · log2(e)`: one fma and one
/// `exp2` per score (the natural `exp` takes about ten instructions), and `m_i` is the running max of
/// the scaled scores. The values are loaded after the softmax, where the kernels always had them.
#[kernel_fn]
pub fn online_softmax_step<T: Float + DotOperands<T>, C: Float>(
    x: Tile<f32>,
    v_cache: Ptr<C>,
    kv_offs: Tile<i64>,
    kv_mask: Tile<bool>,
    v_scale: Tile<f32>,
    m_i: Tile<f32>,
    l_i: Tile<f32>,
    acc: Tile<f32>,
    scale2: Tile<f32>,
) -> (Tile<f32>, Tile<f32>, Tile<f32>) {
    let m_new = maximum(m_i, max(x, 1) * scale2);
    let p = exp2(fma(x, scale2, -m_new.expand_dims(1)));
    let alpha = exp2(m_i - m_new);
    let scaled = kv_scaled::<T, C>();
    let l_new = l_i * alpha + if scaled { sum(p, 1) * fp8_max::<C>() } else { sum(p, 1) };
    let v_tile = load_masked(v_cache + kv_offs, kv_mask, 0.0).to::<T>();
    let pv = if scaled { p * (v_scale * fp8_max::<C>()) } else { p };
    let acc = dot(pv.to::<T>(), v_tile, acc * alpha.expand_dims(1));
    (m_new, l_new, acc)
}
