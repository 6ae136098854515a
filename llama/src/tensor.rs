//! Host tensors: a dtype, a row-major shape and bytes that are either borrowed
//! from a memory map (GGUF, safetensors) or owned (converted weights).
//!
//! Weights are kept in their stored format; backends decide how to consume
//! them (the CPU backend dequantizes blocks of rows on the fly).

use crate::error::{LlamaError, Result};
use crate::quant::{self, DType};
use memmap2::Mmap;
use std::sync::Arc;

/// Where a tensor's bytes live.
#[derive(Clone)]
pub enum TensorData {
    /// A slice of a shared read-only memory map.
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
    },
    /// Owned bytes (e.g. weights converted from FP8 at load time).
    Owned(Arc<Vec<u8>>),
}

/// A tensor on the host.
#[derive(Clone)]
pub struct Tensor {
    pub name: String,
    pub dtype: DType,
    /// Row-major shape, outermost dimension first (PyTorch order).
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// One scale per row, for FP8 weights kept as stored: `value[r, c] = e4m3[r, c] * row_scale[r]`.
    /// [`Tensor::dequantize_rows`] and [`Tensor::to_f32`] apply it; [`Tensor::bytes`] are the raw e4m3.
    pub row_scale: Option<Arc<Vec<f32>>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({} {} {:?})", self.name, self.dtype, self.shape)
    }
}

impl Tensor {
    /// Builds an owned tensor, checking that `bytes` matches the shape.
    pub fn from_bytes(
        name: &str,
        dtype: DType,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let need = dtype.bytes_for(n).ok_or_else(|| {
            LlamaError::tensor(
                name,
                format!("{n} elements is not a whole number of {dtype} blocks"),
            )
        })?;
        if need != bytes.len() {
            return Err(LlamaError::tensor(
                name,
                format!("expected {need} bytes, got {}", bytes.len()),
            ));
        }
        Ok(Tensor {
            name: name.into(),
            dtype,
            shape,
            data: TensorData::Owned(Arc::new(bytes)),
            row_scale: None,
        })
    }

    /// An owned f32 tensor.
    pub fn from_f32(name: &str, shape: Vec<usize>, values: &[f32]) -> Result<Tensor> {
        Self::from_bytes(
            name,
            DType::F32,
            shape,
            quant::encode_float(DType::F32, values)?,
        )
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            TensorData::Mapped { map, offset, len } => &map[*offset..*offset + *len],
            TensorData::Owned(v) => v,
        }
    }

    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of the innermost (contiguous) dimension.
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows (product of all outer dimensions).
    pub fn rows(&self) -> usize {
        self.n_elements().checked_div(self.cols()).unwrap_or(0)
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.dtype.bytes_for(self.cols()).unwrap_or(0)
    }

    /// Dequantizes rows `r0..r0 + out.len() / cols` into `out`.
    pub fn dequantize_rows(&self, r0: usize, out: &mut [f32]) -> Result<()> {
        let rb = self.row_bytes();
        let nrows = out.len() / self.cols().max(1);
        let b = self.bytes();
        let src = b.get(r0 * rb..(r0 + nrows) * rb).ok_or_else(|| {
            LlamaError::tensor(
                &self.name,
                format!("rows {r0}..{} out of range", r0 + nrows),
            )
        })?;
        quant::dequantize(self.dtype, src, out)?;
        self.apply_row_scale(r0, out);
        Ok(())
    }

    /// The whole tensor as f32.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.n_elements()];
        quant::dequantize(self.dtype, self.bytes(), &mut out)?;
        self.apply_row_scale(0, &mut out);
        Ok(out)
    }

    /// Multiplies rows `r0..` of `out` by their [`Tensor::row_scale`], if any.
    fn apply_row_scale(&self, r0: usize, out: &mut [f32]) {
        if let Some(scale) = &self.row_scale {
            for (row, s) in out.chunks_mut(self.cols().max(1)).zip(&scale[r0..]) {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
    }

    /// Checks the shape, with a clear error naming the tensor.
    pub fn expect_shape(&self, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(LlamaError::tensor(
                &self.name,
                format!(
                    "shape {:?} does not match the expected {:?}",
                    self.shape, shape
                ),
            ));
        }
        Ok(())
    }
}
