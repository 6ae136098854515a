//! Runtime values of the interpreter: tiles as flat row-major vectors, block pointers as structs.

use crate::scalar::Scalar;

/// A pointer: a buffer (a kernel argument) and a byte offset into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtrVal {
    pub buf: u32,
    pub offset: i64,
}

/// A block pointer's state (Triton's `make_block_ptr`), all in elements.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockVal {
    pub base: PtrVal,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub offsets: Vec<i64>,
}

/// A tile's elements in row-major order; the shape and dtype live in the kernel's value types.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F(Vec<f64>),
    I(Vec<i64>),
    B(Vec<bool>),
    P(Vec<PtrVal>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Tile(Data),
    Block(BlockVal),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
            Data::B(v) => v.len(),
            Data::P(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `out[i] = self[idx[i]]`.
    pub fn gather(&self, idx: &[usize]) -> Data {
        match self {
            Data::F(v) => Data::F(idx.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(idx.iter().map(|&i| v[i]).collect()),
            Data::B(v) => Data::B(idx.iter().map(|&i| v[i]).collect()),
            Data::P(v) => Data::P(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Element `i` as a number or bool (not for pointers).
    pub fn scalar(&self, i: usize) -> Scalar {
        match self {
            Data::F(v) => Scalar::F(v[i]),
            Data::I(v) => Scalar::I(v[i]),
            Data::B(v) => Scalar::B(v[i]),
            Data::P(_) => panic!("pointer element read as a number"),
        }
    }

    pub fn from_scalars(kind: &Data, items: impl Iterator<Item = Scalar>) -> Data {
        match kind {
            Data::F(_) => Data::F(items.map(|s| s.as_f64()).collect()),
            Data::I(_) => Data::I(items.map(|s| s.as_i64()).collect()),
            Data::B(_) => Data::B(items.map(|s| s.as_bool()).collect()),
            Data::P(_) => panic!("pointer data from scalars"),
        }
    }

    pub fn f(&self) -> &[f64] {
        match self {
            Data::F(v) => v,
            _ => panic!("expected float data"),
        }
    }
    pub fn i(&self) -> &[i64] {
        match self {
            Data::I(v) => v,
            _ => panic!("expected integer data"),
        }
    }
    pub fn b(&self) -> &[bool] {
        match self {
            Data::B(v) => v,
            _ => panic!("expected bool data"),
        }
    }
    pub fn p(&self) -> &[PtrVal] {
        match self {
            Data::P(v) => v,
            _ => panic!("expected pointer data"),
        }
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// For each element of `to`, the index of the `from` element it broadcasts from.
pub fn broadcast_index(from: &[usize], to: &[usize]) -> Vec<usize> {
    let n: usize = to.iter().product();
    let fs = strides(from);
    let lead = to.len() - from.len();
    let ts = strides(to);
    (0..n)
        .map(|flat| {
            let mut src = 0;
            for (d, (&dim_to, &st)) in to.iter().zip(&ts).enumerate() {
                if d < lead {
                    continue;
                }
                let i = (flat / st) % dim_to;
                let fd = d - lead;
                if from[fd] != 1 {
                    src += i * fs[fd];
                }
            }
            src
        })
        .collect()
}

/// For each element of the permuted tile, its index in the source (`out dim d` = `src dim perm[d]`).
pub fn permute_index(src_shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| src_shape[p]).collect();
    let os = strides(&out_shape);
    let ss = strides(src_shape);
    let n: usize = out_shape.iter().product();
    (0..n)
        .map(|flat| out_shape.iter().enumerate().map(|(d, &dim)| ((flat / os[d]) % dim) * ss[perm[d]]).sum())
        .collect()
}
