//! GGUF (v2/v3) reader.
//!
//! The file is memory-mapped: metadata is parsed eagerly (it is small), tensor
//! data is only sliced out of the map, so opening a multi-GB model is instant
//! and weights stay in the page cache instead of being copied. Every offset
//! and length read from the file is checked against the file size, so a
//! truncated or corrupt file yields [`LlamaError::Gguf`], never a panic.

use crate::error::{LlamaError, Result};
use crate::quant::DType;
use crate::tensor::{Tensor, TensorData};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `"GGUF"` read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Default tensor-data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Integer view of any integer-typed value (and integral floats are not accepted).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// Float view of any numeric value.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v as f64),
            Value::I16(v) => Some(v as f64),
            Value::I32(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// Short description for `llama info` (arrays are summarised).
    pub fn summary(&self) -> String {
        match self {
            Value::String(s) => {
                let one: String = s.chars().take(60).collect::<String>().replace('\n', "\\n");
                if s.chars().count() > 60 {
                    format!("{one:?}... ({} chars)", s.len())
                } else {
                    format!("{one:?}")
                }
            }
            Value::Array(a) => format!("[array of {}]", a.len()),
            Value::F32(v) => format!("{v}"),
            Value::F64(v) => format!("{v}"),
            Value::Bool(v) => format!("{v}"),
            other => other
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("{other:?}")),
        }
    }
}

/// One tensor's directory entry.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous (column) axis.
    pub dims: Vec<u64>,
    pub dtype: DType,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    /// Row-major shape (outermost first), i.e. `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An opened GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    index: BTreeMap<String, usize>,
    map: Arc<Mmap>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(msg: impl Into<String>) -> LlamaError {
    LlamaError::Gguf(msg.into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "file truncated while reading {what} at byte {} (need {n} bytes, file has {})",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        // A length can never exceed the bytes left in the file; checking here
        // stops corrupt counts from triggering huge allocations.
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(bad(format!(
                "{what}: length {n} exceeds the {left} bytes left in the file"
            )));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.len(what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(format!("{what}: string is not UTF-8")))
    }
    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8(what)?),
            1 => Value::I8(self.u8(what)? as i8),
            2 => Value::U16(self.u16(what)?),
            3 => Value::I16(self.u16(what)? as i16),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => Value::Bool(self.u8(what)? != 0),
            8 => Value::String(self.string(what)?),
            9 => {
                if depth > 2 {
                    return Err(bad(format!("{what}: arrays nested too deeply")));
                }
                let elem = self.u32(what)?;
                let n = self.len(what)?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(elem, what, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            other => return Err(bad(format!("{what}: unknown metadata value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file (memory-mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| LlamaError::io(path, e))?;
        // SAFETY: the map is read-only; the usual mmap caveat applies (another
        // process truncating the file while we run), as for every mmap loader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| LlamaError::io(path, e))?;
        Self::parse(path.to_path_buf(), Arc::new(map))
    }

    fn parse(path: PathBuf, map: Arc<Mmap>) -> Result<GgufFile> {
        let buf: &[u8] = &map;
        let mut r = Reader { buf, pos: 0 };
        let magic = r
            .u32("magic")
            .map_err(|_| bad("file too small to be GGUF (no magic)"))?;
        if magic != GGUF_MAGIC {
            return Err(bad(format!(
                "wrong magic {:02x?} (expected \"GGUF\"); is this a GGUF file?",
                magic.to_le_bytes()
            )));
        }
        let version = r.u32("version")?;
        if version != 2 && version != 3 {
            return Err(bad(format!(
                "unsupported GGUF version {version} (supported: 2, 3)"
            )));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Each entry takes at least 8 bytes, which bounds plausible counts.
        if n_tensors > buf.len() as u64 / 8 || n_kv > buf.len() as u64 / 8 {
            return Err(bad(format!(
                "implausible counts: {n_tensors} tensors, {n_kv} metadata entries"
            )));
        }
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&key)?;
            let v = r.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two())
                .ok_or_else(|| bad("general.alignment must be a power of two"))?,
            None => DEFAULT_ALIGNMENT,
        };
        let mut raw = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor name #{i}"))?;
            let nd = r.u32(&name)?;
            if nd == 0 || nd > 4 {
                return Err(bad(format!(
                    "tensor `{name}` has {nd} dimensions (expected 1..=4)"
                )));
            }
            let mut dims = Vec::with_capacity(nd as usize);
            for _ in 0..nd {
                dims.push(r.u64(&name)?);
            }
            let ty = r.u32(&name)?;
            let offset = r.u64(&name)?;
            let dtype =
                DType::from_ggml(ty).map_err(|e| LlamaError::tensor(&name, e.to_string()))?;
            raw.push((name, dims, dtype, offset));
        }
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        let mut index = BTreeMap::new();
        for (name, dims, dtype, offset) in raw {
            // Multiply the non-zero dims: when that fits, every partial
            // product in any order fits too (`Tensor::n_elements` multiplies
            // the reversed shape, so a leading 0 must not hide an overflow).
            let nonzero = dims
                .iter()
                .filter(|&&d| d != 0)
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(format!("tensor `{name}`: dimensions overflow")))?;
            let n = if dims.contains(&0) { 0 } else { nonzero };
            if dims[0] % dtype.block_size() as u64 != 0 {
                return Err(LlamaError::tensor(
                    &name,
                    format!(
                        "row length {} is not a multiple of the {dtype} block size",
                        dims[0]
                    ),
                ));
            }
            let size = (n / dtype.block_size() as u64)
                .checked_mul(dtype.type_size() as u64)
                .ok_or_else(|| bad(format!("tensor `{name}`: size overflows")))?;
            let abs = data_start
                .checked_add(offset)
                .ok_or_else(|| bad(format!("tensor `{name}`: offset overflows")))?;
            let end = abs.saturating_add(size);
            if end > buf.len() as u64 {
                return Err(LlamaError::tensor(
                    &name,
                    format!(
                        "data (bytes {abs}..{end}) extends past the end of the file ({} bytes); file truncated?",
                        buf.len()
                    ),
                ));
            }
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(bad(format!("duplicate tensor `{name}`")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset: abs,
                size,
            });
        }
        Ok(GgufFile {
            path,
            version,
            metadata,
            tensors,
            index,
            map,
        })
    }

    /// Metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
    /// Required unsigned integer.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| LlamaError::MissingKey(key.into()))
    }
    /// Required float.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| LlamaError::MissingKey(key.into()))
    }
    /// Required string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| LlamaError::MissingKey(key.into()))
    }
    /// The model architecture (`general.architecture`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// Directory entry of a tensor.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// Raw bytes of a tensor (borrowed from the map).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        // Bounds were validated in `parse`.
        &self.map[info.offset as usize..(info.offset + info.size) as usize]
    }

    /// A tensor that shares the file mapping (no copy).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| LlamaError::tensor(name, "not found in the GGUF file"))?;
        Ok(Tensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape(),
            data: TensorData::Mapped {
                map: self.map.clone(),
                offset: info.offset as usize,
                len: info.size as usize,
            },
            row_scale: None,
        })
    }
}
