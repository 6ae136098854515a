//! Every kernel check of `tests::checks` on the reference interpreter, one `#[test]` per case (named
//! like the case: `softmax::softmax_f32` is `softmax::softmax_f32` here too).

use dsl_core::interp::{HostBuffer, InterpError, Interpreter};
use dsl_core::runtime::{Arg, KernelSpec, Launch, Runtime};
use dsl_core::types::Elem;
use tests::checks;

/// One `#[test]` per listed case, in a module per check module; `generic` cases are also in
/// `checks::all_cases`, `interp_only` ones in `checks::interp_only_cases`.
macro_rules! interp_tests {
    ($(mod $module:ident { generic: [$($case:ident),* $(,)?], interp_only: [$($only:ident),* $(,)?] $(,)? })*) => {
        $(mod $module {
            use super::*;
            $(#[test]
            fn $case() {
                checks::$module::$case(&Interpreter::new());
            })*
            $(#[test]
            fn $only() {
                checks::$module::$only(&Interpreter::new());
            })*
        })*

        /// The names of the cases above, as (generic, interpreter-only).
        fn listed() -> (Vec<String>, Vec<String>) {
            let mut generic: Vec<String> = vec![];
            let mut only: Vec<String> = vec![];
            $(
                $(generic.push(format!("{}::{}", stringify!($module), stringify!($case)));)*
                $(only.push(format!("{}::{}", stringify!($module), stringify!($only)));)*
            )*
            (generic, only)
        }
    };
}

interp_tests! {
    mod elementwise {
        generic: [add_ragged, add_exact, copy_bits, silu_mul_f32, silu_mul_f16, silu_mul_bf16],
        interp_only: [add_ir_prints],
    }
    mod softmax {
        generic: [softmax_f32, softmax_f16, softmax_bf16, softmax_rows_sum_to_one],
        interp_only: [],
    }
    mod rmsnorm {
        generic: [rmsnorm_f32_single_block, rmsnorm_f32_looped, rmsnorm_f16, rmsnorm_bf16],
        interp_only: [],
    }
    mod rope {
        generic: [rope_f32, rope_f16, rope_bf16, rope_qk_fused, rope_kv_append_bf16, rope_kv_append_from_partials],
        interp_only: [rope_position_out_of_table_is_an_error],
    }
    mod qkv_rope {
        generic: [rope_kv_append_from_matvec],
        interp_only: [],
    }
    mod matmul {
        generic: [
            matmul_f32,
            matmul_f16,
            matmul_f16_out_f16,
            matmul_bf16,
            matmul_bf16_out_bf16,
            matmul_e4m3,
            matmul_e5m2,
            matmul_e4m3_x_e5m2,
            matmul_block_shapes_and_layouts,
            matmul_tensor_core_tiles,
            linear_16_bit,
            linear_fp8,
            linear_wgmma_tiles,
            matmul_block_ptr_wgmma_tiles,
            matmul_splitk_f32,
            matmul_splitk_low_precision,
            matmul_splitk_accumulates,
        ],
        interp_only: [matmul_buffer_too_small_is_an_error],
    }
    mod attention {
        generic: [attention_f32, attention_f32_causal, attention_f16, attention_bf16, attention_tensor_core_tiles],
        interp_only: [],
    }
    mod decode_attention {
        generic: [decode_gqa_ragged_f16, decode_groups_bf16, decode_empty_splits_f16, append_then_decode_bf16, decode_fp8_cache, decode_bad_shapes],
        interp_only: [],
    }
    mod prefill_attention {
        generic: [prefill_groups_f16, prefill_head_dims_bf16, prefill_tiles_f16, chunked_prefill_then_decode_bf16, prefill_fp8_cache_bf16, prefill_bad_shapes],
        interp_only: [],
    }
    mod llama_ops {
        generic: [embed_rows_bf16, rmsnorm_to_bf16_and_f16, silu_mul_halves_bf16, rmsnorm_quant_e4m3, silu_mul_then_quantize_blocks_e4m3, argmax_rows_first_of_ties, fill_uniform_matches_the_host],
        interp_only: [],
    }
    mod fp8_gemm {
        generic: [
            fp8_gemm_scales_and_splits,
            fp8_gemm_formats,
            fp8_gemm_tiles,
            fp8_gemm_stream_k,
            fp8_gemm_fused_combine,
            fp8_gemm_is_deterministic,
            fp8_gemm_rejects_bad_arguments,
            fp8_gemm_accumulates_into_out,
            fp8_gemm_matvec,
            swiglu_matvec_epilogue,
            quantize_rows_e4m3,
            fp8_layer_chain,
        ],
        interp_only: [],
    }
    mod residual_norm {
        generic: [residual_norm_matvec_epilogue],
        interp_only: [],
    }
    mod grid_dep {
        generic: [chained_adds],
        interp_only: [],
    }
    mod ops {
        generic: [int_arith, float_arith_f32, float_arith_f16, float_arith_bf16, casts, reductions, shapes, atomics],
        interp_only: [],
    }
}

/// The `#[test]`s above are exactly the registries' cases, in order: a case added to `tests::checks`
/// must get its `#[test]` here (and the other way round).
#[test]
fn every_case_has_a_test() {
    let (generic, only) = listed();
    let registry: Vec<&str> = checks::all_cases::<Interpreter>().into_iter().map(|(name, _)| name).collect();
    assert_eq!(generic, registry, "generic cases vs checks::all_cases");
    let registry: Vec<&str> = checks::interp_only_cases().into_iter().map(|(name, _)| name).collect();
    assert_eq!(only, registry, "interpreter-only cases vs checks::interp_only_cases");
}

/// `run_case` reports a failing case as `Err` with its panic message instead of unwinding, so a runner
/// can go on with the next case.
#[test]
fn run_case_catches_failures() {
    fn failing(_: &Interpreter) {
        panic!("deliberate failure {}", 42);
    }
    fn passing(_: &Interpreter) {}
    let rt = Interpreter::new();
    assert_eq!(checks::run_case(&rt, failing), Err("deliberate failure 42".to_string()));
    assert_eq!(checks::run_case(&rt, passing), Ok(()));
}

/// A backend that is wrong once: the interpreter, but the first buffer it downloads comes back with the
/// sign of element 0 flipped.
struct WrongOnce {
    rt: Interpreter,
    wronged: std::cell::Cell<bool>,
}

impl Runtime for WrongOnce {
    type Buffer<T: Elem> = HostBuffer<T>;
    type Error = InterpError;
    fn launch(&self, kernel: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), InterpError> {
        self.rt.launch(kernel, launch, args)
    }
    fn upload<T: Elem>(&self, values: &[T]) -> Result<HostBuffer<T>, InterpError> {
        self.rt.upload(values)
    }
    fn write<T: Elem>(&self, buffer: &mut HostBuffer<T>, values: &[T]) -> Result<(), InterpError> {
        self.rt.write(buffer, values)
    }
    fn download<T: Elem>(&self, buffer: &HostBuffer<T>) -> Result<Vec<T>, InterpError> {
        let mut v = self.rt.download(buffer)?;
        if !self.wronged.replace(true) {
            let mut bytes = vec![0u8; T::DTYPE.size_bytes()];
            v[0].write_le(&mut bytes);
            *bytes.last_mut().unwrap() ^= 0x80;
            v[0] = T::read_le(&bytes);
        }
        Ok(v)
    }
}

/// Every generic case notices a backend that gets one element wrong (its sign), and `run_case` goes on
/// after each failure: the checks compare what the backend downloads, not something else.
#[test]
fn every_case_fails_on_a_wrong_backend() {
    let passed: Vec<&str> = checks::all_cases::<WrongOnce>()
        .into_iter()
        .filter(|&(_, case)| {
            let rt = WrongOnce { rt: Interpreter::new(), wronged: std::cell::Cell::new(false) };
            checks::run_case(&rt, case).is_ok()
        })
        .map(|(name, _)| name)
        .collect();
    assert!(passed.is_empty(), "cases that passed on a wrong backend: {passed:?}");
}
