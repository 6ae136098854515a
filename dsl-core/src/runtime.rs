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

/// How one launch runs, beyond what the kernel computes: options a backend may use to run it faster.
/// Every field left `None` takes the runtime's default (e.g. `CudaRuntime::set_num_warps`); the
/// interpreter ignores them all, since none changes a kernel's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LaunchOptions {
    /// Warps per program (a power of two from 1 to 32).
    pub num_warps: Option<u32>,
    /// Software-pipeline depth of loops that feed a `dot` (1: no pipelining).
    pub num_stages: Option<u32>,
    /// Programmatic dependent launch (Hopper): a kernel that calls `gdc_wait` may start while the
    /// kernel ahead of it on the stream finishes (see `dsl_core::lang::gdc_wait`).
    pub programmatic: Option<bool>,
    /// A thread-block cluster shape (Hopper). Reserved: no backend launches clusters yet, and a launch
    /// that asks for one is refused with an error rather than run without it.
    pub cluster: Option<[u32; 3]>,
}

impl LaunchOptions {
    /// The launch options a tuning [`Config`](crate::tune::Config) names (`num_warps`, `num_stages`,
    /// `programmatic`: 0 or 1); other entries (block sizes, split-K) are the kernel's and are ignored.
    /// A value out of range is an error naming it.
    pub fn from_config(c: &crate::tune::Config) -> Result<LaunchOptions, String> {
        let get = |name: &str| -> Result<Option<u32>, String> {
            c.get(name).map(|v| u32::try_from(v).map_err(|_| format!("config {c}: {name}={v} is out of range"))).transpose()
        };
        let programmatic = match get("programmatic")? {
            None => None,
            Some(v @ (0 | 1)) => Some(v == 1),
            Some(v) => return Err(format!("config {c}: programmatic={v} is not 0 or 1")),
        };
        let o = LaunchOptions { num_warps: get("num_warps")?, num_stages: get("num_stages")?, programmatic, cluster: None };
        // The ranges are `check`'s, the one place that defines them.
        o.check().map_err(|e| format!("config {c}: {e}"))?;
        Ok(o)
    }

    /// Why these options cannot be launched on any backend (every backend checks them, the interpreter
    /// too, so a bad value fails in CI as on a GPU).
    pub fn check(&self) -> Result<(), String> {
        if let Some(w) = self.num_warps {
            if !(1..=32).contains(&w) || !w.is_power_of_two() {
                return Err(format!("num_warps {w} must be a power of two from 1 to 32"));
            }
        }
        if let Some(s) = self.num_stages {
            if !(1..=8).contains(&s) {
                return Err(format!("num_stages {s} must be between 1 and 8"));
            }
        }
        if let Some(c) = self.cluster {
            return Err(format!("a cluster launch ({c:?}) is not supported yet"));
        }
        Ok(())
    }
}

/// A grid and the options of one launch: what a kernel's `launch` takes. A bare grid (`u32`, a tuple,
/// [`Grid`]) converts into a launch with default options; [`Grid::with`] and the setters add options:
///
/// ```
/// use dsl_core::runtime::{Grid, Launch};
/// let l = Launch::from((64, 4)).num_warps(8).num_stages(4);
/// assert_eq!((l.grid, l.options.num_warps, l.options.num_stages), (Grid([64, 4, 1]), Some(8), Some(4)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Launch {
    pub grid: Grid,
    pub options: LaunchOptions,
}

impl Launch {
    pub fn num_warps(mut self, w: u32) -> Launch {
        self.options.num_warps = Some(w);
        self
    }
    pub fn num_stages(mut self, s: u32) -> Launch {
        self.options.num_stages = Some(s);
        self
    }
    pub fn programmatic(mut self, on: bool) -> Launch {
        self.options.programmatic = Some(on);
        self
    }
    /// Options given here replace this launch's; those left `None` keep it.
    pub fn options(mut self, o: LaunchOptions) -> Launch {
        let m = &mut self.options;
        m.num_warps = o.num_warps.or(m.num_warps);
        m.num_stages = o.num_stages.or(m.num_stages);
        m.programmatic = o.programmatic.or(m.programmatic);
        m.cluster = o.cluster.or(m.cluster);
        self
    }
}

impl Grid {
    /// This grid launched with `options`.
    pub fn with(self, options: LaunchOptions) -> Launch {
        Launch { grid: self, options }
    }
}

macro_rules! launch_from_grid {
    ($($t:ty),*) => {$(
        impl From<$t> for Launch {
            fn from(g: $t) -> Launch {
                Launch { grid: g.into(), options: LaunchOptions::default() }
            }
        }
    )*};
}
launch_from_grid!(Grid, u32, (u32, u32), (u32, u32, u32), [u32; 3]);

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
    /// Runs `kernel` on `launch.grid`; `launch.options` are hints of speed, never of results.
    fn launch(&self, kernel: &KernelSpec, launch: &Launch, args: &mut [Arg<'_>]) -> Result<(), Self::Error>;
    /// A new buffer of this backend holding `values`.
    fn upload<T: Elem>(&self, values: &[T]) -> Result<Self::Buffer<T>, Self::Error>;
    /// A buffer's contents, copied back to the host (after every launch before it has finished).
    fn download<T: Elem>(&self, buffer: &Self::Buffer<T>) -> Result<Vec<T>, Self::Error>;
    /// Overwrites `buffer` (same length) with `values`, in place: the buffer keeps its address, so a
    /// recorded launch sequence (a CUDA graph) that uses it reads the new values. Ordered after every
    /// launch before it.
    fn write<T: Elem>(&self, buffer: &mut Self::Buffer<T>, values: &[T]) -> Result<(), Self::Error>;
}
