//! The reference interpreter: runs a specialized kernel over a grid on host memory. It defines what every
//! op computes; backends are tested against it.
//!
//! It runs programs one after another (x fastest, then y, then z) and checks, on every access, that the
//! address is inside the buffer it points into and aligned; with race checking on (the default) it also
//! reports two programs that touch one address, at least one storing, unless both use atomics.

mod exec;
mod memory;
pub mod value;

use crate::error::CompileError;
use crate::ir::{Kernel, Loc};
use crate::runtime::{AnyBuffer, Arg, Grid, KernelSpec, Launch, Runtime};
use crate::scalar::normalize;
use crate::types::{DType, Elem, ElemTy};
use memory::{BufData, Memory};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use value::{Data, PtrVal, Val};

/// Why a launch on the interpreter failed.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("{0}")]
    Compile(#[from] CompileError),
    /// A program faulted: out-of-bounds or misaligned access, data race, failed device_assert...
    #[error("error: {message}\n  --> {loc}\n  in kernel `{kernel}`, program ({}, {}, {})", program[0], program[1], program[2])]
    Fault { kernel: String, loc: Loc, program: [u32; 3], message: String },
    /// The arguments do not match the kernel's parameters.
    #[error("bad launch of kernel `{kernel}`: {message}")]
    BadLaunch { kernel: String, message: String },
    /// A write of another number of values than the buffer holds.
    #[error("cannot write {got} values into a buffer of {expected}")]
    LengthMismatch { expected: usize, got: usize },
}

/// A buffer in host memory, typed by its element.
#[derive(Clone, PartialEq)]
pub struct HostBuffer<T: Elem> {
    bytes: Vec<u8>,
    _t: PhantomData<T>,
}

impl<T: Elem> HostBuffer<T> {
    pub fn from_slice(values: &[T]) -> Self {
        let size = T::DTYPE.size_bytes();
        let mut bytes = vec![0u8; values.len() * size];
        for (v, chunk) in values.iter().zip(bytes.chunks_exact_mut(size)) {
            v.write_le(chunk);
        }
        HostBuffer { bytes, _t: PhantomData }
    }

    /// `len` copies of `value` (use a poison value such as NaN to see unwritten elements).
    pub fn filled(len: usize, value: T) -> Self {
        Self::from_slice(&vec![value; len])
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.bytes.chunks_exact(T::DTYPE.size_bytes()).map(T::read_le).collect()
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / T::DTYPE.size_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl<T: Elem> std::fmt::Debug for HostBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}

impl<T: Elem> AnyBuffer for HostBuffer<T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn len(&self) -> usize {
        HostBuffer::len(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A host buffer's bytes, whatever its element type.
fn host_bytes(b: &dyn AnyBuffer) -> Option<&[u8]> {
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Some(h) = b.as_any().downcast_ref::<HostBuffer<$t>>() { return Some(&h.bytes); }
        )*};
    }
    use crate::types::{bf16, e4m3, e5m2, f16};
    try_types!(f32, f16, bf16, e4m3, e5m2, i8, i16, i32, i64, u8, u32, bool);
    None
}

fn host_bytes_mut(b: &mut dyn AnyBuffer) -> Option<&mut [u8]> {
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if b.as_any().is::<HostBuffer<$t>>() {
                return b.as_any_mut().downcast_mut::<HostBuffer<$t>>().map(|h| h.bytes.as_mut_slice());
            }
        )*};
    }
    use crate::types::{bf16, e4m3, e5m2, f16};
    try_types!(f32, f16, bf16, e4m3, e5m2, i8, i16, i32, i64, u8, u32, bool);
    None
}

/// The interpreter backend. Specializations are traced once and cached.
pub struct Interpreter {
    race_check: bool,
    cache: Mutex<HashMap<TypeId, Arc<Kernel>>>,
}

impl Default for Interpreter {
    fn default() -> Self {
        Self::new()
    }
}

impl Interpreter {
    pub fn new() -> Self {
        Interpreter { race_check: true, cache: Mutex::new(HashMap::new()) }
    }

    /// Turns the race detector on or off (on by default; it costs memory proportional to the writable
    /// buffers).
    pub fn with_race_check(mut self, on: bool) -> Self {
        self.race_check = on;
        self
    }

    /// The traced, verified IR of a specialization (cached).
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Arc<Kernel>, CompileError> {
        if let Some(k) = self.cache.lock().expect("cache").get(&spec.id) {
            return Ok(k.clone());
        }
        let k = Arc::new((spec.build)()?);
        self.cache.lock().expect("cache").insert(spec.id, k.clone());
        Ok(k)
    }

    /// Runs `kernel` on `grid` with `args` (in parameter order).
    pub fn run(&self, kernel: &Kernel, grid: Grid, args: &mut [Arg<'_>]) -> Result<(), InterpError> {
        let bad = |message: String| InterpError::BadLaunch { kernel: kernel.name.clone(), message };
        if args.len() != kernel.params.len() {
            return Err(bad(format!("{} arguments for {} parameters", args.len(), kernel.params.len())));
        }
        if grid.0.contains(&0) {
            return Ok(());
        }
        if grid.0.iter().any(|&g| g > i32::MAX as u32) {
            return Err(bad(format!("grid {:?} is larger than i32::MAX along an axis", grid.0)));
        }
        let [gx, gy, _] = grid.0;
        let pid_of = move |lin: u32| [lin % gx, (lin / gx) % gy, lin / (gx * gy)];
        let mut mem = Memory { bufs: vec![], program: 0, pid_of: Box::new(pid_of), order: Default::default() };
        let mut env: Vec<Option<Val>> = vec![None; kernel.types.len()];
        for (i, (param, arg)) in kernel.params.iter().zip(args.iter_mut()).enumerate() {
            let ty = kernel.ty(param.value);
            let name = &param.name;
            match (&ty.elem, arg) {
                (ElemTy::Ptr { pointee, mutable }, Arg::Buffer(b)) if !mutable => {
                    if b.dtype() != *pointee {
                        return Err(bad(format!("`{name}` expects a buffer of {pointee}, got {}", b.dtype())));
                    }
                    let bytes = host_bytes(*b).ok_or_else(|| bad(format!("`{name}` is not a host buffer")))?;
                    mem.add(name.clone(), *pointee, BufData::ReadOnly(bytes), false);
                }
                (ElemTy::Ptr { pointee, .. }, Arg::BufferMut(b)) => {
                    if b.dtype() != *pointee {
                        return Err(bad(format!("`{name}` expects a buffer of {pointee}, got {}", b.dtype())));
                    }
                    let bytes = host_bytes_mut(&mut **b).ok_or_else(|| bad(format!("`{name}` is not a host buffer")))?;
                    mem.add(name.clone(), *pointee, BufData::Writable(bytes), self.race_check);
                }
                (ElemTy::Scalar(d), Arg::Scalar(v, vd)) if d == vd => {
                    env[param.value.0 as usize] = Some(Val::Tile(match normalize(*d, *v) {
                        crate::scalar::Scalar::F(x) => Data::F(vec![x]),
                        crate::scalar::Scalar::I(x) => Data::I(vec![x]),
                        crate::scalar::Scalar::B(x) => Data::B(vec![x]),
                    }));
                    continue;
                }
                (t, _) => return Err(bad(format!("argument {i} does not match parameter `{name}: {t}`"))),
            }
            let buf = (mem.bufs.len() - 1) as u32;
            env[param.value.0 as usize] = Some(Val::Tile(Data::P(vec![PtrVal { buf, offset: 0 }])));
        }
        let total = grid.num_programs();
        for lin in 0..total {
            let lin = lin as u32;
            mem.start_program(lin);
            let pid = (mem.pid_of)(lin);
            let mut ex = exec::Exec { k: kernel, env: env.clone(), mem: &mut mem, pid, grid: grid.0 };
            ex.block(&kernel.body).map_err(|(message, loc)| InterpError::Fault {
                kernel: kernel.display_name(),
                loc,
                program: pid,
                message,
            })?;
        }
        Ok(())
    }
}

impl Runtime for Interpreter {
    type Buffer<T: Elem> = HostBuffer<T>;
    type Error = InterpError;

    /// Runs every program in order; the launch options are checked, then ignored (they change speed only).
    fn launch(&self, spec: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), InterpError> {
        launch.options.check().map_err(|message| InterpError::BadLaunch { kernel: spec.name.to_string(), message })?;
        let k = self.kernel(spec)?;
        self.run(&k, launch.grid, args)
    }

    fn upload<T: Elem>(&self, values: &[T]) -> Result<HostBuffer<T>, InterpError> {
        Ok(HostBuffer::from_slice(values))
    }

    fn download<T: Elem>(&self, buffer: &HostBuffer<T>) -> Result<Vec<T>, InterpError> {
        Ok(buffer.to_vec())
    }

    fn write<T: Elem>(&self, buffer: &mut HostBuffer<T>, values: &[T]) -> Result<(), InterpError> {
        if values.len() != buffer.len() {
            return Err(InterpError::LengthMismatch { expected: buffer.len(), got: values.len() });
        }
        *buffer = HostBuffer::from_slice(values);
        Ok(())
    }
}
