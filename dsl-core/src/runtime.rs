//! The seam between the typed launchers that `#[kernel]` generates and the backends that run kernels
//! (the interpreter here, the CUDA runtime in `codegen-ptx`).

use crate::error::CompileError;
use crate::ir::Kernel;
use crate::scalar::Scalar;
use crate::types::{DType, Elem};
use std::any::{Any, TypeId};

/// A launch grid: the number of programs along each of three axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grid(pub [u32; 3]);

impl Grid {
    pub fn num_programs(&self) -> u64 {
        self.0.iter().map(|&d| d as u64).product()
    }
}
impl From<u32> for Grid {
    fn from(x: u32) -> Grid {
        Grid([x, 1, 1])
    }
}
impl From<(u32, u32)> for Grid {
    fn from((x, y): (u32, u32)) -> Grid {
        Grid([x, y, 1])
    }
}
impl From<(u32, u32, u32)> for Grid {
    fn from((x, y, z): (u32, u32, u32)) -> Grid {
        Grid([x, y, z])
    }
}
impl From<[u32; 3]> for Grid {
    fn from(g: [u32; 3]) -> Grid {
        Grid(g)
    }
}

/// One specialization of a `#[kernel]`: its name, a unique id (the Rust type of the specialization, which
/// covers every constexpr), and how to trace it into IR.
#[derive(Clone, Copy)]
pub struct KernelSpec {
    pub name: &'static str,
    pub id: TypeId,
    pub build: fn() -> Result<Kernel, CompileError>,
}

/// A device buffer of some backend, seen without its element type (launchers are typed; backends check
/// again at launch).
pub trait AnyBuffer: Any {
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A launch argument, in kernel parameter order.
pub enum Arg<'a> {
    /// A buffer behind a `Ptr<T>` parameter.
    Buffer(&'a dyn AnyBuffer),
    /// A buffer behind a `MutPtr<T>` parameter.
    BufferMut(&'a mut dyn AnyBuffer),
    /// A scalar parameter.
    Scalar(Scalar, DType),
}

impl<'a> Arg<'a> {
    pub fn scalar<T: Elem>(v: T) -> Arg<'a> {
        let mut bytes = [0u8; 8];
        let n = T::DTYPE.size_bytes();
        v.write_le(&mut bytes[..n]);
        Arg::Scalar(crate::scalar::read_mem(T::DTYPE, &bytes[..n]), T::DTYPE)
    }
}

/// A backend that runs kernels: it owns buffers of its own kind and launches specializations on a grid.
pub trait Runtime {
    /// This backend's buffer of `T` (host memory for the interpreter, device memory for CUDA).
    type Buffer<T: Elem>: AnyBuffer;
    type Error: From<CompileError> + std::error::Error;
    fn launch(&self, kernel: &KernelSpec, grid: Grid, args: &mut [Arg<'_>]) -> Result<(), Self::Error>;
    /// A new buffer of this backend holding `values`.
    fn upload<T: Elem>(&self, values: &[T]) -> Result<Self::Buffer<T>, Self::Error>;
    /// A buffer's contents, copied back to the host (after every launch before it has finished).
    fn download<T: Elem>(&self, buffer: &Self::Buffer<T>) -> Result<Vec<T>, Self::Error>;
}
