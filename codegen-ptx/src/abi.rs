//! The launch ABI of a compiled kernel, described once for the two sides that must agree on it: the
//! lowering ([`crate::lower`]) declares the parameters and writes the error record, the runtime
//! ([`crate::runtime`]) passes the parameters and reads the record back.
//!
//! **Parameters**, in order: the kernel's own (a pointer as its device address, a scalar by value, a
//! `bool` as one byte), then the [`Hidden`] ones that [`hidden_params`] lists: the TMA tensor maps the
//! lowering asked for ([`TensorMapSpec`], each a 128-byte `CUtensorMap` passed by value as a
//! `__grid_constant__` parameter, encoded by the runtime from the launch's arguments), then, with bounds
//! checks (`CompileOptions::bounds_check`), one `i64` per pointer parameter (its buffer's length in
//! elements), then the address of the error record.
//!
//! **Error record**: [`RECORD_WORDS`] `u32`, zero before the launch. The first access outside its
//! buffer sets word 0 to 1 and the others to [`OutOfBounds`]'s fields in [`RecordField`] order; every
//! out-of-bounds access is skipped (a load reads 0).

/// A parameter after the kernel's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// `i64`: the length in elements of the buffer passed for the kernel's parameter `param` (a pointer).
    BufferLen { param: usize },
    /// A pointer to the error record.
    ErrorRecord,
    /// Tensor map `map` of the kernel's list (`.param .align 64 .b8 [128]`, by value).
    TensorMap { map: usize },
}

/// The hidden parameters of a kernel whose own parameters are pointers where `is_pointer` says and that
/// reads `tensor_maps` tensor maps, in the order they follow the kernel's own.
pub fn hidden_params(is_pointer: impl IntoIterator<Item = bool>, bounds_check: bool, tensor_maps: usize) -> Vec<Hidden> {
    let mut h: Vec<Hidden> = (0..tensor_maps).map(|map| Hidden::TensorMap { map }).collect();
    if !bounds_check {
        return h;
    }
    h.extend(is_pointer.into_iter().enumerate().filter(|&(_, p)| p).map(|(param, _)| Hidden::BufferLen { param }));
    h.push(Hidden::ErrorRecord);
    h
}

/// Bytes of a `CUtensorMap`.
pub const TENSOR_MAP_BYTES: usize = 128;

/// A size known when the kernel is compiled, or read from a scalar parameter at launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    Param(usize),
    Const(i64),
}

/// A 2-D tiled tensor map the kernel's TMA loads read through (`cuTensorMapEncodeTiled`): the tensor
/// `[rows][cols]` at the address of pointer parameter `base`, rows `row_stride` elements apart, columns
/// contiguous; each copy brings one `box_rows x box_cols` box into shared memory with the hardware's
/// `swizzle`-byte swizzle (the layout `wgmma` reads; see `lower::tma`). Elements outside the tensor read
/// as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorMapSpec {
    pub base: usize,
    /// Bytes per element (2: f16/bf16, 1: fp8).
    pub elem_bytes: usize,
    /// `true` for bf16 (f16 otherwise when `elem_bytes` is 2).
    pub bf16: bool,
    pub rows: Extent,
    pub cols: Extent,
    pub row_stride: Extent,
    pub box_rows: u32,
    pub box_cols: u32,
    /// 32, 64 or 128.
    pub swizzle: u32,
}

/// What `cuTensorMapEncodeTiled` takes for one [`TensorMapSpec`] and launch, innermost dimension first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeArgs {
    pub address: u64,
    pub global_dim: [u64; 2],
    /// Bytes from one row to the next.
    pub row_stride_bytes: u64,
    pub box_dim: [u32; 2],
    pub elem_bytes: usize,
    pub bf16: bool,
    pub swizzle: u32,
}

impl TensorMapSpec {
    /// The encode arguments for a launch whose pointer parameter `base` is at `address` and whose scalar
    /// parameters read as `scalar` gives them; an error where the hardware cannot map the tensor (the
    /// launch then runs without TMA).
    pub fn encode_args(&self, address: u64, scalar: impl Fn(usize) -> Option<i64>) -> Result<EncodeArgs, String> {
        let get = |e: Extent| match e {
            Extent::Const(c) => Ok(c),
            Extent::Param(p) => scalar(p).ok_or_else(|| format!("parameter {p} is not an integer scalar")),
        };
        let (rows, cols, stride) = (get(self.rows)?, get(self.cols)?, get(self.row_stride)?);
        // (The copies' coordinates are 32-bit signed.)
        for (what, v) in [("rows", rows), ("columns", cols)] {
            if !(1..=i32::MAX as i64).contains(&v) {
                return Err(format!("a tensor map needs 1 to 2^31 - 1 {what}, got {v}"));
            }
        }
        let stride_bytes = stride.checked_mul(self.elem_bytes as i64).unwrap_or(-1);
        if stride_bytes <= 0 || stride_bytes % 16 != 0 || stride_bytes >= 1i64 << 40 {
            return Err(format!("a tensor map's row stride must be a positive multiple of 16 bytes below 2^40, got {stride_bytes}"));
        }
        if address % 16 != 0 {
            return Err(format!("a tensor map's address must be 16-byte aligned, got {address:#x}"));
        }
        Ok(EncodeArgs {
            address,
            global_dim: [cols as u64, rows as u64],
            row_stride_bytes: stride_bytes as u64,
            box_dim: [self.box_cols, self.box_rows],
            elem_bytes: self.elem_bytes,
            bf16: self.bf16,
            swizzle: self.swizzle,
        })
    }
}

/// Words (`u32`) of the error record.
pub const RECORD_WORDS: usize = 8;

/// The error record's words after the flag (word 0), in order: word `1 + field as usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordField {
    Line,
    Column,
    /// The index of the kernel parameter (a pointer) whose buffer was left.
    Param,
    /// The element index, low 32 bits.
    IndexLo,
    /// The element index, high 32 bits.
    IndexHi,
    ProgramX,
    ProgramY,
}

impl RecordField {
    /// Every field, in word order.
    pub const ALL: [RecordField; 7] = [
        RecordField::Line,
        RecordField::Column,
        RecordField::Param,
        RecordField::IndexLo,
        RecordField::IndexHi,
        RecordField::ProgramX,
        RecordField::ProgramY,
    ];

    /// The field's word in the record.
    pub fn word(self) -> usize {
        1 + self as usize
    }
}

/// The first out-of-bounds access of a launch, as its error record holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    pub line: u32,
    pub column: u32,
    pub param: usize,
    pub index: i64,
    pub program: [u32; 2],
}

impl OutOfBounds {
    /// Reads a record back: `None` if no access left its buffer (or the record is short).
    pub fn decode(words: &[u32]) -> Option<OutOfBounds> {
        if words.len() < RECORD_WORDS || words[0] == 0 {
            return None;
        }
        let w = |f: RecordField| words[f.word()];
        Some(OutOfBounds {
            line: w(RecordField::Line),
            column: w(RecordField::Column),
            param: w(RecordField::Param) as usize,
            index: ((w(RecordField::IndexHi) as u64) << 32 | w(RecordField::IndexLo) as u64) as i64,
            program: [w(RecordField::ProgramX), w(RecordField::ProgramY)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_parameters_are_each_pointers_length_then_the_record() {
        let h = hidden_params([true, false, true, false], true, 0);
        assert_eq!(h, vec![Hidden::BufferLen { param: 0 }, Hidden::BufferLen { param: 2 }, Hidden::ErrorRecord]);
        assert!(hidden_params([true, true], false, 0).is_empty());
        // Tensor maps come first.
        let h = hidden_params([true, false], true, 2);
        assert_eq!(
            h,
            vec![Hidden::TensorMap { map: 0 }, Hidden::TensorMap { map: 1 }, Hidden::BufferLen { param: 0 }, Hidden::ErrorRecord]
        );
        assert_eq!(hidden_params([true], false, 1), vec![Hidden::TensorMap { map: 0 }]);
    }

    #[test]
    fn a_tensor_map_is_encoded_innermost_first_and_refused_where_tma_cannot_map_it() {
        // A bf16 [m][k] operand, m = 136 (a parameter), k = 256, rows 256 elements apart; 64 x 64 boxes.
        let spec = TensorMapSpec {
            base: 0,
            elem_bytes: 2,
            bf16: true,
            rows: Extent::Param(3),
            cols: Extent::Const(256),
            row_stride: Extent::Param(6),
            box_rows: 64,
            box_cols: 64,
            swizzle: 128,
        };
        let scalars = |stride: i64| move |p: usize| match p {
            3 => Some(136),
            6 => Some(stride),
            _ => None,
        };
        let e = spec.encode_args(0x7f00_0000_0100, scalars(256)).unwrap();
        assert_eq!(e.global_dim, [256, 136]);
        assert_eq!(e.row_stride_bytes, 512);
        assert_eq!(e.box_dim, [64, 64]);
        assert_eq!((e.swizzle, e.elem_bytes, e.bf16), (128, 2, true));
        // A row stride of 100 bytes, a misaligned base, no rows, a missing scalar: refused.
        assert!(spec.encode_args(0x7f00_0000_0100, scalars(50)).is_err());
        assert!(spec.encode_args(0x7f00_0000_0108, scalars(256)).is_err());
        assert!(TensorMapSpec { rows: Extent::Const(0), ..spec }.encode_args(0x100, scalars(256)).is_err());
        assert!(TensorMapSpec { rows: Extent::Const(1 << 31), ..spec }.encode_args(0x100, scalars(256)).is_err());
        assert!(TensorMapSpec { rows: Extent::Param(9), ..spec }.encode_args(0x100, scalars(256)).is_err());
    }

    #[test]
    fn a_record_decodes_in_field_order() {
        assert_eq!(OutOfBounds::decode(&[0; RECORD_WORDS]), None);
        let mut words = [0u32; RECORD_WORDS];
        words[0] = 1;
        for (i, f) in RecordField::ALL.iter().enumerate() {
            assert_eq!(f.word(), i + 1);
        }
        let index: i64 = -5_000_000_000;
        let vals = [12, 7, 3, index as u64 as u32, (index as u64 >> 32) as u32, 9, 4];
        for (f, v) in RecordField::ALL.iter().zip(vals) {
            words[f.word()] = v;
        }
        let r = OutOfBounds::decode(&words).unwrap();
        assert_eq!(r, OutOfBounds { line: 12, column: 7, param: 3, index, program: [9, 4] });
        assert_eq!(OutOfBounds::decode(&words[..7]), None);
    }
}
