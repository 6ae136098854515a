//! Launch arguments: checked against the kernel's parameters (as the interpreter checks them), turned
//! into the kernel ABI's parameter values, and summarized as the [`ArgFact`]s the compile is specialized
//! on.
//!
//! The ABI (what [`crate::compile`] emits): one `.entry` parameter per kernel parameter, in order; a
//! pointer is the buffer's u64 device address, a scalar is its dtype's little-endian bytes.

use super::buffer::device_mem;
use super::device::DeviceMem;
use super::error::CudaError;
use crate::target::ArgFact;
use dsl_core::ir::Kernel;
use dsl_core::runtime::{AnyBuffer, Arg};
use dsl_core::scalar::{normalize, to_bits};
use dsl_core::types::{DType, ElemTy};
use std::sync::Arc;

/// What a kernel parameter accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParamKind {
    Ptr { pointee: DType, mutable: bool },
    Scalar(DType),
    /// A parameter type no launch can supply (the language does not produce these).
    Other(String),
}

#[derive(Clone, Debug)]
pub(crate) struct ParamSig {
    pub(crate) name: String,
    pub(crate) kind: ParamKind,
}

/// The parameters of `kernel`, in order.
pub(crate) fn signature(kernel: &Kernel) -> Vec<ParamSig> {
    kernel
        .params
        .iter()
        .map(|p| {
            let ty = kernel.ty(p.value);
            let kind = match (&ty.elem, ty.shape.is_empty()) {
                (ElemTy::Ptr { pointee, mutable }, true) => ParamKind::Ptr { pointee: *pointee, mutable: *mutable },
                (ElemTy::Scalar(d), true) => ParamKind::Scalar(*d),
                _ => ParamKind::Other(ty.to_string()),
            };
            ParamSig { name: p.name.clone(), kind }
        })
        .collect()
}

fn param_text(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Ptr { pointee, mutable: true } => format!("MutPtr<{pointee}>"),
        ParamKind::Ptr { pointee, mutable: false } => format!("Ptr<{pointee}>"),
        ParamKind::Scalar(d) => d.to_string(),
        ParamKind::Other(t) => t.clone(),
    }
}

fn arg_text(arg: &Arg<'_>) -> String {
    match arg {
        Arg::Buffer(b) => format!("a shared buffer of {}", b.dtype()),
        Arg::BufferMut(b) => format!("a mutable buffer of {}", b.dtype()),
        Arg::Scalar(_, d) => format!("a scalar {d}"),
    }
}

/// Checks `args` against `params` (count, kind, dtype, mutability), as the interpreter does. A `MutPtr`
/// parameter needs a mutable buffer; a `Ptr` parameter takes either.
pub(crate) fn check(kernel: &str, params: &[ParamSig], args: &[Arg<'_>]) -> Result<(), CudaError> {
    let bad = |message: String| CudaError::BadLaunch { kernel: kernel.to_string(), message };
    if args.len() != params.len() {
        return Err(bad(format!("{} arguments for {} parameters", args.len(), params.len())));
    }
    for (i, (p, a)) in params.iter().zip(args).enumerate() {
        let ok = match (&p.kind, a) {
            (ParamKind::Ptr { pointee, mutable: false }, Arg::Buffer(b)) => b.dtype() == *pointee,
            (ParamKind::Ptr { pointee, .. }, Arg::BufferMut(b)) => b.dtype() == *pointee,
            (ParamKind::Scalar(d), Arg::Scalar(_, vd)) => d == vd,
            _ => false,
        };
        if !ok {
            return Err(bad(format!(
                "argument {i} is {}, but parameter `{}` is {}",
                arg_text(a),
                p.name,
                param_text(&p.kind)
            )));
        }
    }
    Ok(())
}

/// A scalar's parameter bytes, little-endian in the low bytes of a u64 (the driver reads the parameter's
/// size from the address we pass).
pub(crate) fn scalar_word(d: DType, v: dsl_core::scalar::Scalar) -> u64 {
    to_bits(d, normalize(d, v))
}

/// Launch arguments in ABI form.
pub(crate) struct Packed<'a> {
    /// One u64 slot per parameter: a device address or a scalar's bytes.
    pub(crate) words: Vec<u64>,
    pub(crate) facts: Vec<ArgFact>,
    /// The device memory of buffer arguments (kept alive by a graph being captured).
    pub(crate) mems: Vec<&'a Arc<DeviceMem>>,
}

/// Turns checked `args` into parameter values. Every buffer must be a [`super::CudaBuffer`] of the device
/// `owner` (compared by identity).
pub(crate) fn pack<'a>(
    kernel: &str,
    params: &[ParamSig],
    args: &'a [Arg<'_>],
    owner: &Arc<super::device::Device>,
) -> Result<Packed<'a>, CudaError> {
    let mut p = Packed { words: Vec::with_capacity(args.len()), facts: Vec::with_capacity(args.len()), mems: Vec::new() };
    for (param, arg) in params.iter().zip(args) {
        let buffer: &dyn AnyBuffer = match arg {
            Arg::Scalar(v, d) => {
                p.words.push(scalar_word(*d, *v));
                p.facts.push(ArgFact::of_scalar(*d, *v));
                continue;
            }
            Arg::Buffer(b) => *b,
            Arg::BufferMut(b) => &**b,
        };
        let mem = device_mem(buffer).ok_or_else(|| CudaError::BadLaunch {
            kernel: kernel.to_string(),
            message: format!("`{}` is not a CudaBuffer (a buffer of another backend?)", param.name),
        })?;
        if !Arc::ptr_eq(&mem.dev, owner) {
            return Err(CudaError::BadLaunch {
                kernel: kernel.to_string(),
                message: format!("`{}` belongs to another CudaRuntime; buffers are used by the runtime that made them", param.name),
            });
        }
        p.words.push(mem.ptr);
        p.facts.push(ArgFact::of_address(mem.ptr));
        p.mems.push(mem);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl_core::interp::HostBuffer;
    use dsl_core::scalar::Scalar;

    fn sig() -> Vec<ParamSig> {
        vec![
            ParamSig { name: "x".into(), kind: ParamKind::Ptr { pointee: DType::F32, mutable: false } },
            ParamSig { name: "out".into(), kind: ParamKind::Ptr { pointee: DType::F32, mutable: true } },
            ParamSig { name: "n".into(), kind: ParamKind::Scalar(DType::I32) },
        ]
    }

    #[test]
    fn args_are_checked_like_the_interpreter() {
        let x = HostBuffer::from_slice(&[1f32]);
        let mut out = HostBuffer::from_slice(&[0f32]);
        let mut x_mut = HostBuffer::from_slice(&[1f32]);
        let mut ints = HostBuffer::from_slice(&[0i32]);
        // Right.
        check("k", &sig(), &[Arg::Buffer(&x), Arg::BufferMut(&mut out), Arg::scalar(3i32)]).unwrap();
        // A mutable buffer also serves a Ptr parameter.
        check("k", &sig(), &[Arg::BufferMut(&mut x_mut), Arg::BufferMut(&mut out), Arg::scalar(3i32)]).unwrap();
        // Count.
        let e = check("k<B=4>", &sig(), &[Arg::Buffer(&x)]).unwrap_err().to_string();
        assert!(e.contains("k<B=4>") && e.contains("1 arguments for 3 parameters"), "{e}");
        // Mutability.
        let e = check("k", &sig(), &[Arg::Buffer(&x), Arg::Buffer(&x), Arg::scalar(3i32)]).unwrap_err().to_string();
        assert!(e.contains("`out`") && e.contains("MutPtr<f32>") && e.contains("shared buffer"), "{e}");
        // Buffer dtype.
        let e = check("k", &sig(), &[Arg::Buffer(&x), Arg::BufferMut(&mut ints), Arg::scalar(3i32)]).unwrap_err().to_string();
        assert!(e.contains("buffer of i32") && e.contains("`out`"), "{e}");
        // Scalar dtype.
        let e = check("k", &sig(), &[Arg::Buffer(&x), Arg::BufferMut(&mut out), Arg::scalar(3i64)]).unwrap_err().to_string();
        assert!(e.contains("scalar i64") && e.contains("`n` is i32"), "{e}");
        // Scalar where a buffer goes.
        let e = check("k", &sig(), &[Arg::scalar(1i32), Arg::BufferMut(&mut out), Arg::scalar(3i32)]).unwrap_err().to_string();
        assert!(e.contains("argument 0") && e.contains("`x` is Ptr<f32>"), "{e}");
    }

    #[test]
    fn scalars_pack_to_their_le_bits() {
        assert_eq!(scalar_word(DType::I32, Scalar::I(-1)), 0xffff_ffff);
        assert_eq!(scalar_word(DType::I64, Scalar::I(-1)), u64::MAX);
        assert_eq!(scalar_word(DType::F32, Scalar::F(1.5)), 1.5f32.to_bits() as u64);
        assert_eq!(scalar_word(DType::F16, Scalar::F(1.0)), 0x3c00);
        assert_eq!(scalar_word(DType::BF16, Scalar::F(1.0)), 0x3f80);
        assert_eq!(scalar_word(DType::Bool, Scalar::B(true)), 1);
        assert_eq!(scalar_word(DType::U8, Scalar::I(255)), 0xff);
        // The bytes the driver reads are the first `size` bytes of the word.
        assert_eq!(&scalar_word(DType::I16, Scalar::I(-2)).to_le_bytes()[..2], &(-2i16).to_le_bytes());
    }

    #[test]
    fn facts_follow_values() {
        assert_eq!(ArgFact::of_scalar(DType::I32, Scalar::I(1)), ArgFact::One);
        assert_eq!(ArgFact::of_scalar(DType::I32, Scalar::I(64)), ArgFact::Div16);
        assert_eq!(ArgFact::of_scalar(DType::I64, Scalar::I(0)), ArgFact::Div16);
        assert_eq!(ArgFact::of_scalar(DType::I32, Scalar::I(7)), ArgFact::None);
        assert_eq!(ArgFact::of_scalar(DType::U32, Scalar::I(32)), ArgFact::Div16);
        assert_eq!(ArgFact::of_scalar(DType::F32, Scalar::F(1.0)), ArgFact::None);
        assert_eq!(ArgFact::of_scalar(DType::Bool, Scalar::B(true)), ArgFact::None);
    }
}
