//! Element types, tile types and the Rust marker types that name them in kernels.

use std::fmt;

/// A scalar element type of a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// fp8 e4m3fn: 4 exponent bits, 3 mantissa bits, no infinities, one NaN pattern per sign.
    F8E4M3,
    /// fp8 e5m2: IEEE-like, with infinities and NaNs.
    F8E5M2,
    I8,
    I16,
    I32,
    I64,
    U8,
    U32,
    Bool,
}

impl DType {
    pub const ALL: [DType; 12] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U32,
        DType::Bool,
    ];

    /// Size in memory, in bytes (a `bool` occupies one byte, holding 0 or 1).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I64 => 8,
        }
    }

    pub fn bits(self) -> u32 {
        self.size_bytes() as u32 * 8
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2)
    }

    pub fn is_fp8(self) -> bool {
        matches!(self, DType::F8E4M3 | DType::F8E5M2)
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::U8 | DType::U32)
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    pub fn is_bool(self) -> bool {
        self == DType::Bool
    }

    /// The short name used in the IR text form and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F8E4M3 => "e4m3",
            DType::F8E5M2 => "e5m2",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U32 => "u32",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one element of a tile is: a number, a pointer, or a block pointer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ElemTy {
    Scalar(DType),
    /// A pointer to `pointee` in global memory; `mutable` pointers may be stored through.
    Ptr { pointee: DType, mutable: bool },
    /// A block pointer (Triton's `make_block_ptr`): always a single value (shape `[]`) that describes a
    /// `block_shape` window into a strided tensor.
    BlockPtr { pointee: DType, mutable: bool, block_shape: Vec<usize> },
}

impl ElemTy {
    pub fn scalar(&self) -> Option<DType> {
        match self {
            ElemTy::Scalar(d) => Some(*d),
            _ => None,
        }
    }
}

impl fmt::Display for ElemTy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemTy::Scalar(d) => write!(f, "{d}"),
            ElemTy::Ptr { pointee, mutable } => {
                write!(f, "{}<{pointee}>", if *mutable { "mut_ptr" } else { "ptr" })
            }
            ElemTy::BlockPtr { pointee, mutable, block_shape } => {
                let dims: Vec<String> = block_shape.iter().map(|d| d.to_string()).collect();
                let kind = if *mutable { "mut_block_ptr" } else { "block_ptr" };
                write!(f, "{kind}<{pointee}, [{}]>", dims.join("x"))
            }
        }
    }
}

/// The type of an IR value: an element type and a static shape (`[]` for a scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub elem: ElemTy,
    pub shape: Vec<usize>,
}

impl Type {
    pub fn new(elem: ElemTy, shape: Vec<usize>) -> Type {
        Type { elem, shape }
    }

    pub fn scalar(dtype: DType) -> Type {
        Type { elem: ElemTy::Scalar(dtype), shape: vec![] }
    }

    pub fn tile(dtype: DType, shape: Vec<usize>) -> Type {
        Type { elem: ElemTy::Scalar(dtype), shape }
    }

    pub fn dtype(&self) -> Option<DType> {
        self.elem.scalar()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn with_shape(&self, shape: Vec<usize>) -> Type {
        Type { elem: self.elem.clone(), shape }
    }

    pub fn with_elem(&self, elem: ElemTy) -> Type {
        Type { elem, shape: self.shape.clone() }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shape.is_empty() {
            write!(f, "{}", self.elem)
        } else {
            let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
            write!(f, "{}[{}]", self.elem, dims.join("x"))
        }
    }
}

/// Formats a shape as `[a, b]` for error messages.
pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// The fp8 e4m3fn type, stored as in memory.
pub use float8::F8E4M3 as e4m3;
/// The fp8 e5m2 type, stored as in memory.
pub use float8::F8E5M2 as e5m2;
pub use half::{bf16, f16};

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that names an element type of the language: `f32`, `f16`, `bf16`, `e4m3`, `e5m2`, `i8`,
/// `i16`, `i32`, `i64`, `u8`, `u32`, `bool`. Host buffers hold values of these types.
pub trait Elem: Copy + Send + Sync + fmt::Debug + PartialEq + 'static + sealed::Sealed {
    const DTYPE: DType;
    /// Writes the value's little-endian bytes (`DTYPE.size_bytes()` of them).
    fn write_le(self, out: &mut [u8]);
    /// Reads a value from its little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! elem_int {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Elem for $t {
            const DTYPE: DType = DType::$d;
            fn write_le(self, out: &mut [u8]) { out.copy_from_slice(&self.to_le_bytes()) }
            fn read_le(bytes: &[u8]) -> Self { <$t>::from_le_bytes(bytes.try_into().expect("element size")) }
        }
    )*};
}
elem_int!(f32 => F32, i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u32 => U32);

macro_rules! elem_bits {
    ($($t:ty => $d:ident, $bits:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Elem for $t {
            const DTYPE: DType = DType::$d;
            fn write_le(self, out: &mut [u8]) { out.copy_from_slice(&self.to_bits().to_le_bytes()) }
            fn read_le(bytes: &[u8]) -> Self {
                <$t>::from_bits(<$bits>::from_le_bytes(bytes.try_into().expect("element size")))
            }
        }
    )*};
}
elem_bits!(f16 => F16, u16, bf16 => BF16, u16, e4m3 => F8E4M3, u8, e5m2 => F8E5M2, u8);

impl sealed::Sealed for bool {}
impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn write_le(self, out: &mut [u8]) {
        out[0] = self as u8
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

/// Floating-point element types.
pub trait Float: Elem {}
impl Float for f32 {}
impl Float for f16 {}
impl Float for bf16 {}
impl Float for e4m3 {}
impl Float for e5m2 {}

/// Integer element types.
pub trait Int: Elem {}
impl Int for i8 {}
impl Int for i16 {}
impl Int for i32 {}
impl Int for i64 {}
impl Int for u8 {}
impl Int for u32 {}
