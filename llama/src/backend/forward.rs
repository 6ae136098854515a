//! The Llama forward pass, written once: the order of a step's operations over its `n` tokens at
//! positions `start..start + n`. Each backend supplies the operations ([`Ops`]) over buffers it owns:
//! the CPU with its own arithmetic (`cpu.rs`), the GPU as launches of the `kernels` crate
//! (`gpu/step.rs`, on a GPU or on the interpreter). A backend may fuse work inside one operation
//! (the GPU quantizes a norm's output for the next FP8 GEMM in the norm's kernel, adds the residual
//! in the output GEMMs' combine, rotates and appends keys in one kernel), or fold an operation into
//! its neighbour in the graph and leave the operation itself nothing to do (at a decode step the GPU's
//! matrix-vector products apply the norm before them, and the SwiGLU or RoPE and the cache append
//! after them); the order of the graph stays this one.

use crate::error::Result;

/// A block's RMSNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// Before attention (`attn_norm`).
    Attention,
    /// Before the MLP (`ffn_norm`).
    Mlp,
}

/// A block's linear layers (`y = x · Wᵀ`), as the forward pass uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linear {
    /// `q, k, v = h · [Wq; Wk; Wv]ᵀ` (one product or three).
    Qkv,
    /// `x += att · Woᵀ`: the attention output added to the residual stream.
    Out,
    /// `gate, up = h · [Wgate; Wup]ᵀ`.
    GateUp,
    /// `x += act · Wdownᵀ`: the MLP output added to the residual stream.
    Down,
}

/// The operations of a step. Each reads and writes the backend's buffers for the step: the residual
/// stream `x` (one row per token), the norm output `h`, `q`/`k`/`v`, the attention output `att`,
/// `gate`/`up`, the SwiGLU output `act`, and the logits of the step's last rows.
pub trait Ops {
    /// `x = tok_embd[tokens]`.
    fn embed(&mut self) -> Result<()>;
    /// `h = RMSNorm(x) * weight` with the block's `which` weight.
    fn norm(&mut self, layer: usize, which: Norm) -> Result<()>;
    /// One linear layer (see [`Linear`] for what each reads and writes).
    fn linear(&mut self, layer: usize, which: Linear) -> Result<()>;
    /// RoPE of `q` and `k` at the tokens' positions; `k` and `v` appended to the layer's KV cache.
    fn rope_append(&mut self, layer: usize) -> Result<()>;
    /// `att = softmax(q kᵀ / sqrt(head_dim)) v` over the layer's cache, causal, each query head
    /// attending its group's KV head.
    fn attention(&mut self, layer: usize) -> Result<()>;
    /// `act = silu(gate) * up`.
    fn swiglu(&mut self, layer: usize) -> Result<()>;
    /// `logits = RMSNorm(x[last rows]) * norm · Woutᵀ` (a backend may also pick the greedy token).
    fn head(&mut self) -> Result<()>;
}

/// The forward pass of one step of a model with `n_layers` blocks.
pub fn forward(ops: &mut impl Ops, n_layers: usize) -> Result<()> {
    ops.embed()?;
    for layer in 0..n_layers {
        ops.norm(layer, Norm::Attention)?;
        ops.linear(layer, Linear::Qkv)?;
        ops.rope_append(layer)?;
        ops.attention(layer)?;
        ops.linear(layer, Linear::Out)?;
        ops.norm(layer, Norm::Mlp)?;
        ops.linear(layer, Linear::GateUp)?;
        ops.swiglu(layer)?;
        ops.linear(layer, Linear::Down)?;
    }
    ops.head()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls, to pin the order of the graph.
    struct Trace(Vec<String>);

    impl Ops for Trace {
        fn embed(&mut self) -> Result<()> {
            self.0.push("embed".into());
            Ok(())
        }
        fn norm(&mut self, layer: usize, which: Norm) -> Result<()> {
            self.0.push(format!("{layer}:norm {which:?}"));
            Ok(())
        }
        fn linear(&mut self, layer: usize, which: Linear) -> Result<()> {
            self.0.push(format!("{layer}:{which:?}"));
            Ok(())
        }
        fn rope_append(&mut self, layer: usize) -> Result<()> {
            self.0.push(format!("{layer}:rope_append"));
            Ok(())
        }
        fn attention(&mut self, layer: usize) -> Result<()> {
            self.0.push(format!("{layer}:attention"));
            Ok(())
        }
        fn swiglu(&mut self, layer: usize) -> Result<()> {
            self.0.push(format!("{layer}:swiglu"));
            Ok(())
        }
        fn head(&mut self) -> Result<()> {
            self.0.push("head".into());
            Ok(())
        }
    }

    #[test]
    fn a_block_is_attention_then_mlp_each_added_to_the_residual() {
        let mut t = Trace(vec![]);
        forward(&mut t, 2).unwrap();
        let block = |l: usize| {
            ["norm Attention", "Qkv", "rope_append", "attention", "Out", "norm Mlp", "GateUp", "swiglu", "Down"].map(|op| format!("{l}:{op}"))
        };
        let mut want = vec!["embed".to_string()];
        want.extend(block(0));
        want.extend(block(1));
        want.push("head".into());
        assert_eq!(t.0, want);
    }
}
