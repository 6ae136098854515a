//! Executes one program of a kernel: the reference semantics of every op.

use super::memory::{Access, Memory};
use super::value::{broadcast_index, permute_index, strides, BlockVal, Data, PtrVal, Val};
use crate::ir::{AtomicOp, BinaryOp, Block, CmpOp, Const, Kernel, Op, OpKind, Padding, ReduceOp, UnaryOp, ValueId};
use crate::scalar::{self, round_float, wrap_int, Scalar};
use crate::types::{DType, ElemTy, Type};

pub(crate) struct Exec<'k, 'm, 'a> {
    pub k: &'k Kernel,
    pub env: Vec<Option<Val>>,
    pub mem: &'m mut Memory<'a>,
    pub pid: [u32; 3],
    pub grid: [u32; 3],
}

/// An error inside one op, before the interpreter adds where it happened.
pub(crate) type OpResult<T> = Result<T, String>;

impl Exec<'_, '_, '_> {
    fn val(&self, v: ValueId) -> &Val {
        self.env[v.0 as usize].as_ref().expect("verified IR: value defined before use")
    }
    fn data(&self, v: ValueId) -> &Data {
        match self.val(v) {
            Val::Tile(d) => d,
            Val::Block(_) => panic!("verified IR: tile expected"),
        }
    }
    fn block_val(&self, v: ValueId) -> &BlockVal {
        match self.val(v) {
            Val::Block(b) => b,
            Val::Tile(_) => panic!("verified IR: block pointer expected"),
        }
    }
    fn ty(&self, v: ValueId) -> &Type {
        self.k.ty(v)
    }
    fn dtype(&self, v: ValueId) -> DType {
        self.ty(v).dtype().expect("verified IR: numeric tile")
    }
    fn scalar_i(&self, v: ValueId) -> i64 {
        self.data(v).i()[0]
    }
    fn set(&mut self, v: ValueId, val: Val) {
        self.env[v.0 as usize] = Some(val);
    }

    /// Runs a block; returns the values of its final `yield` (none for the kernel body).
    pub fn block(&mut self, b: &Block) -> Result<Vec<Val>, (String, crate::ir::Loc)> {
        for op in &b.ops {
            if let OpKind::Yield { values } = &op.kind {
                return Ok(values.iter().map(|v| self.val(*v).clone()).collect());
            }
            self.op(op)?;
        }
        Ok(vec![])
    }

    fn op(&mut self, op: &Op) -> Result<(), (String, crate::ir::Loc)> {
        match &op.kind {
            OpKind::For { lo, hi, step, init, body } => {
                let (lo, hi, step) = (self.scalar_i(*lo), self.scalar_i(*hi), self.scalar_i(*step));
                if step <= 0 {
                    return Err((format!("a loop step must be positive, got {step}"), op.loc));
                }
                let mut carried: Vec<Val> = init.iter().map(|v| self.val(*v).clone()).collect();
                let mut iv = lo;
                while iv < hi {
                    self.set(body.args[0], Val::Tile(Data::I(vec![iv])));
                    for (a, c) in body.args[1..].iter().zip(carried) {
                        self.set(*a, c);
                    }
                    carried = self.block(body)?;
                    iv += step;
                }
                for (r, c) in op.results.iter().zip(carried) {
                    self.set(*r, c);
                }
                Ok(())
            }
            OpKind::If { cond, then_block, else_block } => {
                let taken = if self.data(*cond).b()[0] { then_block } else { else_block };
                let vals = self.block(taken)?;
                for (r, v) in op.results.iter().zip(vals) {
                    self.set(*r, v);
                }
                Ok(())
            }
            kind => {
                let out = self.simple(kind, op).map_err(|m| (m, op.loc))?;
                if let Some(v) = out {
                    self.set(op.results[0], v);
                }
                Ok(())
            }
        }
    }

    /// Ops without nested blocks; returns the single result, if any.
    fn simple(&mut self, kind: &OpKind, op: &Op) -> OpResult<Option<Val>> {
        use OpKind::*;
        let result_ty = op.results.first().map(|r| self.ty(*r).clone());
        let tile = |d: Data| Ok(Some(Val::Tile(d)));
        match kind {
            ProgramId { axis } => tile(Data::I(vec![self.pid[*axis as usize] as i64])),
            NumPrograms { axis } => tile(Data::I(vec![self.grid[*axis as usize] as i64])),
            Arange { start, end } => tile(Data::I((*start as i64..*end as i64).collect())),
            Constant { value, .. } => tile(match value {
                Const::F(x) => Data::F(vec![*x]),
                Const::I(i) => Data::I(vec![*i]),
                Const::B(b) => Data::B(vec![*b]),
            }),
            Broadcast { src, shape } => {
                let idx = broadcast_index(&self.ty(*src).shape, shape);
                tile(self.data(*src).gather(&idx))
            }
            Reshape { src, .. } | ExpandDims { src, .. } => tile(self.data(*src).clone()),
            Permute { src, perm } => {
                let idx = permute_index(&self.ty(*src).shape, perm);
                tile(self.data(*src).gather(&idx))
            }
            Cast { src, to } => {
                let from = self.dtype(*src);
                let d = self.data(*src);
                let kind = empty_of(*to);
                tile(Data::from_scalars(&kind, (0..d.len()).map(|i| scalar::cast(from, *to, d.scalar(i)))))
            }
            Bitcast { src, to } => {
                let from = self.dtype(*src);
                let d = self.data(*src);
                let kind = empty_of(*to);
                tile(Data::from_scalars(&kind, (0..d.len()).map(|i| scalar::bitcast(from, *to, d.scalar(i)))))
            }
            Unary { op, src } => tile(unary(*op, self.dtype(*src), self.data(*src))),
            Binary { op, lhs, rhs } => tile(binary(*op, self.dtype(*lhs), self.data(*lhs), self.data(*rhs))),
            Compare { op, lhs, rhs } => tile(compare(*op, self.data(*lhs), self.data(*rhs))),
            Select { cond, on_true, on_false } => {
                let c = self.data(*cond).b();
                let idx: Vec<usize> = (0..c.len()).map(|i| if c[i] { i } else { c.len() + i }).collect();
                let both = concat(self.data(*on_true), self.data(*on_false));
                tile(both.gather(&idx))
            }
            Fma { a, b, c } => {
                let d = self.dtype(*a);
                let (x, y, z) = (self.data(*a).f(), self.data(*b).f(), self.data(*c).f());
                let out = (0..x.len())
                    .map(|i| match d {
                        DType::F32 => (x[i] as f32).mul_add(y[i] as f32, z[i] as f32) as f64,
                        _ => round_float(d, x[i].mul_add(y[i], z[i])),
                    })
                    .collect();
                tile(Data::F(out))
            }
            Reduce { op, src, axis, .. } => {
                let shape = self.ty(*src).shape.clone();
                tile(reduce(*op, self.dtype(*src), self.data(*src), &shape, *axis))
            }
            Dot { a, b, acc } => {
                let (sa, sb) = (&self.ty(*a).shape, &self.ty(*b).shape);
                let (m, k, n) = (sa[0], sa[1], sb[1]);
                let (x, y, c) = (self.data(*a).f(), self.data(*b).f(), self.data(*acc).f());
                let mut out = c.to_vec();
                for i in 0..m {
                    for j in 0..n {
                        let mut s = out[i * n + j] as f32;
                        for kk in 0..k {
                            s = (x[i * k + kk] as f32).mul_add(y[kk * n + j] as f32, s);
                        }
                        out[i * n + j] = s as f64;
                    }
                }
                tile(Data::F(out))
            }
            AddPtr { ptr, offset } => {
                let size = pointee(self.ty(*ptr)).size_bytes() as i64;
                let (p, o) = (self.data(*ptr).p(), self.data(*offset).i());
                tile(Data::P(p.iter().zip(o).map(|(p, o)| PtrVal { buf: p.buf, offset: p.offset + o * size }).collect()))
            }
            PtrCast { ptr, .. } => tile(self.data(*ptr).clone()),
            Load { ptr, mask, other, .. } => {
                let d = pointee(self.ty(*ptr));
                let ptrs = self.data(*ptr).p().to_vec();
                let mask = mask.map(|m| self.data(m).b().to_vec());
                let other = other.map(|o| self.data(o).clone());
                let mut out = Vec::with_capacity(ptrs.len());
                for (i, p) in ptrs.iter().enumerate() {
                    let on = mask.as_ref().is_none_or(|m| m[i]);
                    out.push(if on {
                        self.mem.load(*p, d)?
                    } else {
                        other.as_ref().map(|o| o.scalar(i)).unwrap_or(Scalar::I(0))
                    });
                }
                tile(Data::from_scalars(&empty_of(d), out.into_iter()))
            }
            Store { ptr, value, mask, .. } => {
                let d = pointee(self.ty(*ptr));
                let ptrs = self.data(*ptr).p().to_vec();
                let mask = mask.map(|m| self.data(m).b().to_vec());
                let vals = self.data(*value).clone();
                for (i, p) in ptrs.iter().enumerate() {
                    if mask.as_ref().is_none_or(|m| m[i]) {
                        self.mem.store(*p, d, vals.scalar(i), Access::Store)?;
                    }
                }
                Ok(None)
            }
            Atomic { op, ptr, value, mask } => {
                let d = pointee(self.ty(*ptr));
                let ptrs = self.data(*ptr).p().to_vec();
                let mask = mask.map(|m| self.data(m).b().to_vec());
                let vals = self.data(*value).clone();
                let mut out = Vec::with_capacity(ptrs.len());
                for (i, p) in ptrs.iter().enumerate() {
                    if !mask.as_ref().is_none_or(|m| m[i]) {
                        out.push(vals.scalar(i));
                        continue;
                    }
                    let v = vals.scalar(i);
                    let old = self.mem.atomic(*p, d, |old| Some(atomic_combine(*op, d, old, v)))?;
                    out.push(old);
                }
                tile(Data::from_scalars(&empty_of(d), out.into_iter()))
            }
            AtomicCas { ptr, cmp, value, mask } => {
                let d = pointee(self.ty(*ptr));
                let ptrs = self.data(*ptr).p().to_vec();
                let mask = mask.map(|m| self.data(m).b().to_vec());
                let (cmps, vals) = (self.data(*cmp).clone(), self.data(*value).clone());
                let mut out = Vec::with_capacity(ptrs.len());
                for (i, p) in ptrs.iter().enumerate() {
                    if !mask.as_ref().is_none_or(|m| m[i]) {
                        out.push(vals.scalar(i));
                        continue;
                    }
                    let (c, v) = (cmps.scalar(i), vals.scalar(i));
                    out.push(self.mem.atomic(*p, d, |old| if old == c { Some(v) } else { None })?);
                }
                tile(Data::from_scalars(&empty_of(d), out.into_iter()))
            }
            MakeBlockPtr { base, shape, strides, offsets, .. } => {
                let base = self.data(*base).p()[0];
                let get = |vs: &Vec<ValueId>| vs.iter().map(|v| self.scalar_i(*v)).collect::<Vec<i64>>();
                let bv = BlockVal { base, shape: get(shape), strides: get(strides), offsets: get(offsets) };
                if let Some(d) = bv.shape.iter().find(|&&d| d < 0) {
                    return Err(format!("a block pointer's tensor shape cannot be negative, got {d}"));
                }
                Ok(Some(Val::Block(bv)))
            }
            AdvanceBlockPtr { ptr, offsets } => {
                let mut bv = self.block_val(*ptr).clone();
                for (o, v) in bv.offsets.iter_mut().zip(offsets) {
                    *o += self.scalar_i(*v);
                }
                Ok(Some(Val::Block(bv)))
            }
            LoadBlock { ptr, padding, .. } => {
                let ty = result_ty.expect("load_block result");
                let d = ty.dtype().expect("numeric");
                let bv = self.block_val(*ptr).clone();
                let mut out = Vec::with_capacity(ty.numel());
                for addr in block_addresses(&bv, &ty.shape, d) {
                    out.push(match addr {
                        Some(p) => self.mem.load(p, d)?,
                        None => match padding {
                            Padding::Zero => Scalar::F(0.0),
                            Padding::Nan => Scalar::F(f64::NAN),
                        },
                    });
                }
                let out = out.into_iter().map(|s| scalar::normalize(d, s));
                tile(Data::from_scalars(&empty_of(d), out))
            }
            StoreBlock { ptr, value, .. } => {
                let vt = self.ty(*value).clone();
                let d = vt.dtype().expect("numeric");
                let bv = self.block_val(*ptr).clone();
                let vals = self.data(*value).clone();
                for (i, addr) in block_addresses(&bv, &vt.shape, d).into_iter().enumerate() {
                    if let Some(p) = addr {
                        self.mem.store(p, d, vals.scalar(i), Access::Store)?;
                    }
                }
                Ok(None)
            }
            PrefetchL2 { ptr, mask } => {
                // Reads no values, but an address outside its buffer is as wrong as a load's.
                let ptrs = self.data(*ptr).p().to_vec();
                let mask = self.data(*mask).b().to_vec();
                for (p, _) in ptrs.iter().zip(&mask).filter(|(_, on)| **on) {
                    self.mem.check_prefetch(*p, pointee(self.ty(*ptr)))?;
                }
                Ok(None)
            }
            // Programs of one launch run after the previous launch has finished: nothing to wait for.
            GridDepWait | GridDepLaunch => Ok(None),
            Fence => {
                self.mem.fence();
                Ok(None)
            }
            Print { prefix, args } => {
                let [x, y, z] = self.pid;
                let parts: Vec<String> = args.iter().map(|a| format_data(self.data(*a), self.dtype(*a))).collect();
                println!("pid ({x}, {y}, {z}) {prefix} {}", parts.join(" "));
                Ok(None)
            }
            Assert { cond, msg } => {
                let c = self.data(*cond).b();
                if let Some(i) = c.iter().position(|b| !b) {
                    return Err(format!("device_assert failed at element {i}: {msg}"));
                }
                Ok(None)
            }
            For { .. } | If { .. } | Yield { .. } => unreachable!("handled by op()"),
        }
    }
}

fn pointee(t: &Type) -> DType {
    match t.elem {
        ElemTy::Ptr { pointee, .. } => pointee,
        _ => panic!("verified IR: pointer expected"),
    }
}

/// An empty `Data` of the representation `d` uses.
fn empty_of(d: DType) -> Data {
    if d.is_float() {
        Data::F(vec![])
    } else if d.is_int() {
        Data::I(vec![])
    } else {
        Data::B(vec![])
    }
}

fn concat(a: &Data, b: &Data) -> Data {
    match (a, b) {
        (Data::F(x), Data::F(y)) => Data::F([x.as_slice(), y].concat()),
        (Data::I(x), Data::I(y)) => Data::I([x.as_slice(), y].concat()),
        (Data::B(x), Data::B(y)) => Data::B([x.as_slice(), y].concat()),
        (Data::P(x), Data::P(y)) => Data::P([x.as_slice(), y].concat()),
        _ => panic!("verified IR: where operands of one type"),
    }
}

/// The address of each block element, or `None` where it falls outside the tensor.
fn block_addresses(bv: &BlockVal, block: &[usize], d: DType) -> Vec<Option<PtrVal>> {
    let n: usize = block.iter().product();
    let st = strides(block);
    (0..n)
        .map(|flat| {
            let mut elem = 0i64;
            for dim in 0..block.len() {
                let t = bv.offsets[dim] + ((flat / st[dim]) % block[dim]) as i64;
                if t < 0 || t >= bv.shape[dim] {
                    return None;
                }
                elem += t * bv.strides[dim];
            }
            Some(PtrVal { buf: bv.base.buf, offset: bv.base.offset + elem * d.size_bytes() as i64 })
        })
        .collect()
}

fn format_data(d: &Data, dt: DType) -> String {
    let items: Vec<String> = match d {
        Data::F(v) => v.iter().map(|x| format!("{x}")).collect(),
        Data::I(v) => v.iter().map(|x| format!("{x}")).collect(),
        Data::B(v) => v.iter().map(|x| format!("{x}")).collect(),
        Data::P(v) => v.iter().map(|p| format!("buf{}+{}", p.buf, p.offset)).collect(),
    };
    if items.len() == 1 {
        format!("{}: {dt}", items[0])
    } else {
        format!("[{}]: {dt}", items.join(", "))
    }
}

fn float_min_max(is_max: bool, a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b {
        // -0.0 < +0.0
        return if is_max == a.is_sign_negative() { b } else { a };
    }
    if (a > b) == is_max {
        a
    } else {
        b
    }
}

fn unary(op: UnaryOp, d: DType, x: &Data) -> Data {
    match x {
        Data::F(v) => Data::F(
            v.iter()
                .map(|&a| {
                    let r = match op {
                        UnaryOp::Neg => -a,
                        UnaryOp::Abs => a.abs(),
                        UnaryOp::Exp => a.exp(),
                        UnaryOp::Exp2 => a.exp2(),
                        UnaryOp::Log => a.ln(),
                        UnaryOp::Log2 => a.log2(),
                        UnaryOp::Sqrt => a.sqrt(),
                        UnaryOp::Rsqrt => 1.0 / a.sqrt(),
                        UnaryOp::Sin => a.sin(),
                        UnaryOp::Cos => a.cos(),
                        UnaryOp::Tanh => a.tanh(),
                        UnaryOp::Sigmoid => 1.0 / (1.0 + (-a).exp()),
                        UnaryOp::Floor => a.floor(),
                        UnaryOp::Ceil => a.ceil(),
                        UnaryOp::Not => unreachable!("verified IR"),
                    };
                    round_float(d, r)
                })
                .collect(),
        ),
        Data::I(v) => Data::I(
            v.iter()
                .map(|&a| {
                    let r = match op {
                        UnaryOp::Neg => a.wrapping_neg(),
                        UnaryOp::Abs => a.wrapping_abs(),
                        UnaryOp::Not => !a,
                        _ => unreachable!("verified IR"),
                    };
                    wrap_int(d, r)
                })
                .collect(),
        ),
        Data::B(v) => Data::B(v.iter().map(|&b| !b).collect()),
        Data::P(_) => unreachable!("verified IR"),
    }
}

/// Integer binary op with the GPU's semantics (see the `lang` module docs).
pub fn int_binary(op: BinaryOp, d: DType, a: i64, b: i64) -> i64 {
    let bits = d.bits() as u64;
    let r = match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                -1
            } else {
                a.wrapping_div(b)
            }
        }
        BinaryOp::Rem => {
            if b == 0 {
                a
            } else {
                a.wrapping_rem(b)
            }
        }
        BinaryOp::And => a & b,
        BinaryOp::Or => a | b,
        BinaryOp::Xor => a ^ b,
        BinaryOp::Shl => {
            let s = b as u64; // a negative amount is a huge unsigned one
            if s >= bits {
                0
            } else {
                a.wrapping_shl(s as u32)
            }
        }
        BinaryOp::Shr => {
            let s = b as u64;
            if d.is_signed_int() {
                if s >= bits {
                    if a < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    a >> s
                }
            } else if s >= bits {
                0
            } else {
                ((a as u64) >> s) as i64
            }
        }
        BinaryOp::Min => a.min(b),
        BinaryOp::Max => a.max(b),
    };
    wrap_int(d, r)
}

fn binary(op: BinaryOp, d: DType, x: &Data, y: &Data) -> Data {
    match (x, y) {
        (Data::F(a), Data::F(b)) => Data::F(
            a.iter()
                .zip(b)
                .map(|(&a, &b)| {
                    let r = match op {
                        BinaryOp::Add => a + b,
                        BinaryOp::Sub => a - b,
                        BinaryOp::Mul => a * b,
                        BinaryOp::Div => a / b,
                        BinaryOp::Rem => a % b,
                        BinaryOp::Min => float_min_max(false, a, b),
                        BinaryOp::Max => float_min_max(true, a, b),
                        _ => unreachable!("verified IR"),
                    };
                    round_float(d, r)
                })
                .collect(),
        ),
        (Data::I(a), Data::I(b)) => Data::I(a.iter().zip(b).map(|(&a, &b)| int_binary(op, d, a, b)).collect()),
        (Data::B(a), Data::B(b)) => Data::B(
            a.iter()
                .zip(b)
                .map(|(&a, &b)| match op {
                    BinaryOp::And => a & b,
                    BinaryOp::Or => a | b,
                    BinaryOp::Xor => a ^ b,
                    _ => unreachable!("verified IR"),
                })
                .collect(),
        ),
        _ => unreachable!("verified IR"),
    }
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

fn compare(op: CmpOp, x: &Data, y: &Data) -> Data {
    Data::B(match (x, y) {
        (Data::F(a), Data::F(b)) => a.iter().zip(b).map(|(&a, &b)| cmp(op, a, b)).collect(),
        (Data::I(a), Data::I(b)) => a.iter().zip(b).map(|(&a, &b)| cmp(op, a, b)).collect(),
        (Data::B(a), Data::B(b)) => a.iter().zip(b).map(|(&a, &b)| cmp(op, a, b)).collect(),
        _ => unreachable!("verified IR"),
    })
}

fn reduce(op: ReduceOp, d: DType, x: &Data, shape: &[usize], axis: usize) -> Data {
    let n = shape[axis];
    let post: usize = shape[axis + 1..].iter().product();
    let pre: usize = shape[..axis].iter().product();
    let lane = |p: usize, q: usize| (0..n).map(move |k| p * n * post + k * post + q);
    let mut f_out = vec![];
    let mut i_out = vec![];
    for p in 0..pre {
        for q in 0..post {
            match (op, x) {
                (ReduceOp::ArgMax | ReduceOp::ArgMin, _) => {
                    let is_max = op == ReduceOp::ArgMax;
                    let mut best = 0usize;
                    for (k, idx) in lane(p, q).enumerate() {
                        let (v, b) = (x.scalar(idx), x.scalar(lane(p, q).nth(best).expect("lane")));
                        let better = match (v, b) {
                            (Scalar::F(v), Scalar::F(b)) => !b.is_nan() && (v.is_nan() || (if is_max { v > b } else { v < b })),
                            (Scalar::I(v), Scalar::I(b)) => if is_max { v > b } else { v < b },
                            _ => false,
                        };
                        if better {
                            best = k;
                        }
                    }
                    i_out.push(best as i64);
                }
                (_, Data::F(v)) => {
                    let it = lane(p, q).map(|i| v[i]);
                    let r = match op {
                        ReduceOp::Sum => round_float(d, it.sum()),
                        ReduceOp::Max => it.fold(f64::NEG_INFINITY, |a, b| float_min_max(true, a, b)),
                        ReduceOp::Min => it.fold(f64::INFINITY, |a, b| float_min_max(false, a, b)),
                        _ => unreachable!(),
                    };
                    f_out.push(r);
                }
                (_, Data::I(v)) => {
                    let mut it = lane(p, q).map(|i| v[i]);
                    let first = it.next().expect("non-empty axis");
                    let r = it.fold(first, |a, b| match op {
                        ReduceOp::Sum => int_binary(BinaryOp::Add, d, a, b),
                        ReduceOp::Max => a.max(b),
                        ReduceOp::Min => a.min(b),
                        _ => unreachable!(),
                    });
                    i_out.push(r);
                }
                _ => unreachable!("verified IR"),
            }
        }
    }
    if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) || matches!(x, Data::I(_)) {
        Data::I(i_out)
    } else {
        Data::F(f_out)
    }
}

fn atomic_combine(op: AtomicOp, d: DType, old: Scalar, v: Scalar) -> Scalar {
    match (old, v) {
        (Scalar::F(o), Scalar::F(v)) => Scalar::F(match op {
            AtomicOp::Add => round_float(d, o + v),
            AtomicOp::Max => if v > o { v } else { o },
            AtomicOp::Min => if v < o { v } else { o },
            AtomicOp::Xchg => v,
        }),
        (Scalar::I(o), Scalar::I(v)) => Scalar::I(match op {
            AtomicOp::Add => int_binary(BinaryOp::Add, d, o, v),
            AtomicOp::Max => o.max(v),
            AtomicOp::Min => o.min(v),
            AtomicOp::Xchg => v,
        }),
        _ => unreachable!("verified IR"),
    }
}
