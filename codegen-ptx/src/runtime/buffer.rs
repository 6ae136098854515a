//! Typed device memory: [`CudaBuffer<T>`] and the host ↔ device copies.
//!
//! A buffer owns an `Arc<DeviceMem>`: a CUDA graph that launched a kernel on the buffer holds another
//! reference, so the memory outlives every graph that can still touch it. Freeing is stream-ordered (after
//! the work queued before it), and deferred while a graph is being captured.

use super::device::{Device, DeviceMem};
use super::driver;
use super::error::CudaError;
use dsl_core::runtime::AnyBuffer;
use dsl_core::types::{DType, Elem};
use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

/// A buffer of `len` values of `T` in GPU memory, owned by one [`super::CudaRuntime`].
///
/// Launches take it as a kernel argument (`&buf` for `Ptr<T>`, `&mut buf` for `MutPtr<T>`). Copies to and
/// from the host are ordered after every launch queued before them.
pub struct CudaBuffer<T: Elem> {
    pub(crate) mem: Arc<DeviceMem>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Elem> CudaBuffer<T> {
    /// `len` elements of uninitialized device memory (any bit pattern reads back as some value of `T`).
    pub(crate) fn alloc(dev: &Arc<Device>, len: usize) -> Result<Self, CudaError> {
        let bytes = len.checked_mul(T::DTYPE.size_bytes()).ok_or(CudaError::OutOfMemory {
            bytes: usize::MAX,
            detail: format!(" ({len} elements of {} overflow the address space)", T::DTYPE),
        })?;
        Ok(CudaBuffer { mem: Arc::new(DeviceMem::alloc(dev, bytes)?), len, _t: PhantomData })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of the first element.
    pub fn device_ptr(&self) -> u64 {
        self.mem.ptr
    }

    /// Copies `values` (exactly `len` of them) into the buffer.
    pub fn copy_from(&mut self, values: &[T]) -> Result<(), CudaError> {
        if values.len() != self.len {
            return Err(CudaError::LengthMismatch { expected: self.len, got: values.len() });
        }
        let dev = &self.mem.dev;
        dev.not_capturing("copy_from")?;
        dev.bind()?;
        let bytes = host_bytes(values);
        // SAFETY: the allocation holds `len * size` bytes, as many as `bytes`.
        unsafe { driver::copy_to_device(self.mem.ptr, &bytes, dev.cu_stream) }.map_err(|e| dev.sync_error("upload", e))
    }

    /// The buffer's contents (waits for every launch queued before).
    pub fn to_vec(&self) -> Result<Vec<T>, CudaError> {
        let dev = &self.mem.dev;
        dev.not_capturing("download")?;
        dev.bind()?;
        download::<T>(self.len, |dst| {
            // SAFETY: `dst` has `len * size` bytes, as many as the allocation.
            unsafe { driver::copy_to_host(dst, self.mem.ptr, dev.cu_stream) }.map_err(|e| dev.sync_error("download", e))
        })
    }

    /// Sets every element to zero (the all-zero bit pattern: `0`, `0.0`, `false`).
    pub fn fill_zero(&mut self) -> Result<(), CudaError> {
        let dev = &self.mem.dev;
        dev.not_capturing("fill_zero")?;
        dev.bind()?;
        // SAFETY: zeroes exactly the allocation.
        unsafe { driver::zero(self.mem.ptr, self.mem.bytes, dev.cu_stream) }.map_err(|e| dev.sync_error("fill_zero", e))
    }
}

impl<T: Elem> std::fmt::Debug for CudaBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer<{}>[{}] @ {:#x} on GPU {}", T::DTYPE, self.len, self.mem.ptr, self.mem.dev.info.ordinal)
    }
}

impl<T: Elem> AnyBuffer for CudaBuffer<T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The device memory behind a launch argument, if it is a [`CudaBuffer`] of any element type.
pub(crate) fn device_mem(b: &dyn AnyBuffer) -> Option<&Arc<DeviceMem>> {
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Some(c) = b.as_any().downcast_ref::<CudaBuffer<$t>>() { return Some(&c.mem); }
        )*};
    }
    use dsl_core::types::{bf16, e4m3, e5m2, f16};
    try_types!(f32, f16, bf16, e4m3, e5m2, i8, i16, i32, i64, u8, u32, bool);
    None
}

/// True when `T`'s in-memory representation is its little-endian encoding (`Elem::write_le`), so slices
/// can be copied as bytes: every element type is plain data of `DTYPE.size_bytes()` bytes without padding.
fn same_layout<T: Elem>() -> bool {
    cfg!(target_endian = "little") && std::mem::size_of::<T>() == T::DTYPE.size_bytes()
}

/// The bytes of `values` as the device stores them.
pub(crate) fn host_bytes<T: Elem>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    if same_layout::<T>() {
        // SAFETY: every `Elem` type is plain data without padding (ints, floats, `#[repr(transparent)]`
        // wrappers of u16/u8, bool), so its bytes are initialized; the length covers the slice exactly.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values))
        })
    } else {
        let size = T::DTYPE.size_bytes();
        let mut out = vec![0u8; values.len() * size];
        for (v, chunk) in values.iter().zip(out.chunks_exact_mut(size)) {
            v.write_le(chunk);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// `len` values of `T` filled by `fill` from their bytes. Device memory can hold any bytes; `bool` (where
/// only 0 and 1 are valid) and other layouts go through `Elem::read_le`.
pub(crate) fn download<T: Elem>(
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), CudaError>,
) -> Result<Vec<T>, CudaError> {
    let size = T::DTYPE.size_bytes();
    if same_layout::<T>() && T::DTYPE != DType::Bool {
        let mut out = vec![T::read_le(&[0u8; 8][..size]); len];
        // SAFETY: as in `host_bytes`; in addition every bit pattern is a valid value of the non-bool
        // element types (ints, floats, float wrappers), so the device may write any bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(&out[..])) };
        fill(bytes)?;
        Ok(out)
    } else {
        let mut bytes = vec![0u8; len * size];
        fill(&mut bytes)?;
        Ok(bytes.chunks_exact(size).map(T::read_le).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl_core::types::{bf16, e4m3, f16};

    fn round_trip<T: Elem>(values: &[T]) -> Vec<T> {
        let bytes = host_bytes(values).into_owned();
        // The byte form is the little-endian encoding.
        let size = T::DTYPE.size_bytes();
        for (v, chunk) in values.iter().zip(bytes.chunks_exact(size)) {
            let mut le = vec![0u8; size];
            v.write_le(&mut le);
            assert_eq!(le, chunk);
        }
        download::<T>(values.len(), |dst| {
            dst.copy_from_slice(&bytes);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn byte_views_match_the_le_encoding() {
        assert_eq!(round_trip(&[1.5f32, -0.0, f32::INFINITY]), [1.5f32, -0.0, f32::INFINITY]);
        assert_eq!(round_trip(&[i64::MIN, 7]), [i64::MIN, 7]);
        assert_eq!(round_trip(&[f16::from_f32(0.5), f16::MAX]), [f16::from_f32(0.5), f16::MAX]);
        assert_eq!(round_trip(&[bf16::from_f32(3.0)]), [bf16::from_f32(3.0)]);
        assert_eq!(round_trip(&[e4m3::from_f32(2.0)]), [e4m3::from_f32(2.0)]);
        assert_eq!(round_trip(&[true, false]), [true, false]);
        assert_eq!(round_trip::<u32>(&[]), Vec::<u32>::new());
    }

    #[test]
    fn bool_download_accepts_any_byte() {
        let v = download::<bool>(3, |dst| {
            dst.copy_from_slice(&[0, 1, 7]);
            Ok(())
        })
        .unwrap();
        assert_eq!(v, [false, true, true]);
    }
}
