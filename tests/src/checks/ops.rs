//! Every op family of the language, on a backend against the interpreter (which defines the semantics):
//! integer and float arithmetic (with zeros, NaNs, infinities, signed zeros, huge shift amounts and
//! division by zero), casts between all types, bitcasts, reductions along each axis and whole, shape ops,
//! and atomics. Exact ops must agree bit for bit (NaNs only as NaNs); transcendental functions within the
//! accuracy `codegen-ptx/src/lower/math.rs` documents.

use super::*;
use dsl_core::prelude::*;

/// Float and integer outputs of one launch.
type Outputs = (Vec<f32>, Vec<i32>);

cases!("ops": int_arith, float_arith_f32, float_arith_f16, float_arith_bf16, casts, reductions, shapes, atomics);

const B: i32 = 256;

#[kernel]
pub fn int_ops<const B: i32>(x: Ptr<i32>, y: Ptr<i32>, out: MutPtr<i32>, n: i32) {
    let offs = program_id(0) * B + arange(0, B);
    let m = offs < n;
    let a = load_masked(x + offs, m, 0);
    let b = load_masked(y + offs, m, 0);
    let s = b & 63;
    let u = a.to::<u32>();
    store_masked(out + offs, a + b, m);
    store_masked(out + 1 * n + offs, a - b, m);
    store_masked(out + 2 * n + offs, a * b, m);
    store_masked(out + 3 * n + offs, a / b, m);
    store_masked(out + 4 * n + offs, a % b, m);
    store_masked(out + 5 * n + offs, a & b, m);
    store_masked(out + 6 * n + offs, a | b, m);
    store_masked(out + 7 * n + offs, a ^ b, m);
    store_masked(out + 8 * n + offs, a << s, m);
    store_masked(out + 9 * n + offs, a >> s, m);
    store_masked(out + 10 * n + offs, (u >> s.to::<u32>()).to::<i32>(), m);
    store_masked(out + 11 * n + offs, (u / b.to::<u32>()).to::<i32>(), m);
    store_masked(out + 12 * n + offs, minimum(a, b), m);
    store_masked(out + 13 * n + offs, maximum(a, b), m);
    store_masked(out + 14 * n + offs, -a, m);
    store_masked(out + 15 * n + offs, !a, m);
    store_masked(out + 16 * n + offs, abs(a), m);
    store_masked(out + 17 * n + offs, where_(a < b, a, b), m);
    store_masked(out + 18 * n + offs, (a == b).to::<i32>(), m);
    store_masked(out + 19 * n + offs, minimum(u, b.to::<u32>()).to::<i32>(), m);
}

/// The float op kernel for one element type (arithmetic is not generic over `Float`, which includes fp8).
macro_rules! float_ops_kernel {
    ($name:ident, $t:ty) => {
        #[kernel]
        pub fn $name<const B: i32>(x: Ptr<$t>, y: Ptr<$t>, out: MutPtr<$t>, n: i32) {
    let offs = program_id(0) * B + arange(0, B);
    let m = offs < n;
    let a = load_masked(x + offs, m, 0.0);
    let b = load_masked(y + offs, m, 0.0);
    // Exact ops first (indices 0..14), then approximations (14..).
    store_masked(out + offs, a + b, m);
    store_masked(out + 1 * n + offs, a - b, m);
    store_masked(out + 2 * n + offs, a * b, m);
    store_masked(out + 3 * n + offs, a / b, m);
    store_masked(out + 4 * n + offs, minimum(a, b), m);
    store_masked(out + 5 * n + offs, maximum(a, b), m);
    store_masked(out + 6 * n + offs, fma(a, b, a), m);
    store_masked(out + 7 * n + offs, floor(a), m);
    store_masked(out + 8 * n + offs, ceil(a), m);
    store_masked(out + 9 * n + offs, abs(a), m);
    store_masked(out + 10 * n + offs, -a, m);
    store_masked(out + 11 * n + offs, sqrt(abs(a)), m);
    store_masked(out + 12 * n + offs, where_(a < b, a, b), m);
    store_masked(out + 13 * n + offs, (a >= b).to::<$t>(), m);
    store_masked(out + 14 * n + offs, exp(a), m);
    store_masked(out + 15 * n + offs, exp2(a), m);
    store_masked(out + 16 * n + offs, log(abs(a)), m);
    store_masked(out + 17 * n + offs, log2(abs(a)), m);
    store_masked(out + 18 * n + offs, sin(a), m);
    store_masked(out + 19 * n + offs, cos(a), m);
    store_masked(out + 20 * n + offs, tanh(a), m);
    store_masked(out + 21 * n + offs, sigmoid(a), m);
    store_masked(out + 22 * n + offs, rsqrt(abs(a)), m);
}
    };
}
float_ops_kernel!(float_ops_f32, f32);
float_ops_kernel!(float_ops_f16, f16);
float_ops_kernel!(float_ops_bf16, bf16);

/// Element types with a float op kernel.
pub trait FloatOps: TestElem {
    fn launch<R: Runtime>(rt: &R, x: &R::Buffer<Self>, y: &R::Buffer<Self>, out: &mut R::Buffer<Self>, n: usize) -> Result<(), R::Error>;
}
macro_rules! float_ops_impl {
    ($t:ty, $k:ident) => {
        impl FloatOps for $t {
            fn launch<R: Runtime>(rt: &R, x: &R::Buffer<Self>, y: &R::Buffer<Self>, out: &mut R::Buffer<Self>, n: usize) -> Result<(), R::Error> {
                $k::<B>::launch(rt, blocks(n, B as usize), x, y, out, n as i32)
            }
        }
    };
}
float_ops_impl!(f32, float_ops_f32);
float_ops_impl!(f16, float_ops_f16);
float_ops_impl!(bf16, float_ops_bf16);

#[kernel]
pub fn cast_ops<const B: i32>(x: Ptr<f32>, out: MutPtr<f32>, bits: MutPtr<i32>, n: i32) {
    let offs = program_id(0) * B + arange(0, B);
    let m = offs < n;
    let a = load_masked(x + offs, m, 0.0);
    let i = a.to::<i32>();
    store_masked(out + offs, i.to::<f32>(), m);
    store_masked(out + 1 * n + offs, a.to::<u8>().to::<f32>(), m);
    store_masked(out + 2 * n + offs, a.to::<i8>().to::<f32>(), m);
    store_masked(out + 3 * n + offs, a.to::<i64>().to::<f32>(), m);
    store_masked(out + 4 * n + offs, a.to::<u32>().to::<f32>(), m);
    store_masked(out + 5 * n + offs, a.to::<i16>().to::<f32>(), m);
    store_masked(out + 6 * n + offs, a.to::<f16>().to::<f32>(), m);
    store_masked(out + 7 * n + offs, a.to::<bf16>().to::<f32>(), m);
    store_masked(out + 8 * n + offs, a.to::<e4m3>().to::<f32>(), m);
    store_masked(out + 9 * n + offs, a.to::<e5m2>().to::<f32>(), m);
    store_masked(out + 10 * n + offs, a.to::<bool>().to::<f32>(), m);
    store_masked(out + 11 * n + offs, a.to::<f16>().to::<e4m3>().to::<bf16>().to::<f32>(), m);
    store_masked(out + 12 * n + offs, (i >> 8).to::<f16>().to::<f32>(), m);
    store_masked(out + 13 * n + offs, (i >> 8).to::<bf16>().to::<f32>(), m);
    store_masked(out + 14 * n + offs, i.to::<e5m2>().to::<f32>(), m);
    store_masked(out + 15 * n + offs, i.to::<i8>().to::<i64>().to::<f32>(), m);
    store_masked(bits + offs, a.bitcast::<i32>(), m);
    store_masked(bits + n + offs, (a.to::<f16>().bitcast::<i16>()).to::<i32>(), m);
    store_masked(bits + 2 * n + offs, i.bitcast::<f32>().bitcast::<u32>().to::<i32>(), m);
}

/// One `[R, C]` tile per program: reductions along each axis and whole, f32 and i32.
#[kernel]
pub fn reduce_ops<const R: i32, const C: i32>(x: Ptr<f32>, fo: MutPtr<f32>, io: MutPtr<i32>) {
    let pid = program_id(0);
    let rows = arange(0, R);
    let cols = arange(0, C);
    let t = load(x + pid * (R * C) + rows.expand_dims(1) * C + cols.expand_dims(0));
    let ti = (t * 100.0).to::<i32>();
    let fbase = fo + pid * (4 * R + 4 * C + 3);
    let ibase = io + pid * (6 * R + 6 * C + 2);
    store(fbase + cols, sum(t, 0));
    store(fbase + C + cols, max(t, 0));
    store(fbase + 2 * C + cols, min(t, 0));
    store(fbase + 3 * C + rows, sum(t, 1));
    store(fbase + 3 * C + R + rows, max(t, 1));
    store(fbase + 3 * C + 2 * R + rows, min(t, 1));
    store(fbase + 3 * C + 3 * R + cols, sum(t * t, 0) / 7.0);
    store(fbase + 4 * C + 3 * R + rows, max(t, 1) - min(t, 1));
    store(fbase + 4 * C + 4 * R, sum(sum(t, 1), 0));
    store(fbase + 4 * C + 4 * R + 1, max(max(t, 0), 0));
    store(fbase + 4 * C + 4 * R + 2, min(min(t, 1), 0));
    store(ibase + cols, argmax(t, 0));
    store(ibase + C + cols, argmin(t, 0));
    store(ibase + 2 * C + rows, argmax(t, 1));
    store(ibase + 2 * C + R + rows, argmin(t, 1));
    store(ibase + 2 * C + 2 * R + cols, sum(ti, 0));
    store(ibase + 3 * C + 2 * R + rows, sum(ti, 1));
    store(ibase + 3 * C + 3 * R + cols, max(ti, 0));
    store(ibase + 4 * C + 3 * R + rows, min(ti, 1));
    store(ibase + 4 * C + 4 * R + cols, argmax(ti, 0));
    store(ibase + 5 * C + 4 * R + rows, argmin(ti, 1));
    store(ibase + 5 * C + 5 * R + rows, argmax(max(t, 1).expand_dims(1) + t, 1));
    store(ibase + 6 * C + 6 * R, argmax(sum(t, 0), 0));
    store(ibase + 6 * C + 6 * R + 1, sum(sum(ti, 0), 0));
}

/// Shape ops on an `[R, C]` tile: transpose, permute, broadcasts both ways, reshape.
#[kernel]
pub fn shape_ops<const R: i32, const C: i32>(x: Ptr<f32>, out: MutPtr<f32>) {
    let pid = program_id(0);
    let rows = arange(0, R);
    let cols = arange(0, C);
    let t = load(x + pid * (R * C) + rows.expand_dims(1) * C + cols.expand_dims(0));
    let base = out + pid * (5 * R * C);
    let tr = t.trans();
    store(base + cols.expand_dims(1) * R + rows.expand_dims(0), tr);
    let col0 = load(x + pid * (R * C) + rows * C).expand_dims(1);
    let row0 = load(x + pid * (R * C) + cols).expand_dims(0);
    store(base + R * C + rows.expand_dims(1) * C + cols.expand_dims(0), t + col0);
    store(base + 2 * R * C + rows.expand_dims(1) * C + cols.expand_dims(0), t * row0);
    let flat = t.reshape([R * C]);
    store(base + 3 * R * C + arange(0, R * C), flat + 1.0);
    let p = t.reshape([R, C / 2, 2]).permute([2, 0, 1]).reshape([R * C]);
    store(base + 4 * R * C + arange(0, R * C), p);
}

#[kernel]
pub fn atomic_ops<const BLOCK: i32>(
    total: MutPtr<f32>,
    counters: MutPtr<i32>,
    hist: MutPtr<i32>,
    fmax: MutPtr<f32>,
    vals: Ptr<f32>,
    halves: MutPtr<f16>,
    bhalves: MutPtr<bf16>,
) {
    let pid = program_id(0);
    let offs = arange(0, BLOCK);
    atomic_add(total + offs, full([BLOCK], 0.5), true);
    atomic_max(counters + 0, pid, true);
    atomic_min(counters + 1, pid, true);
    let old = atomic_add(counters + 2, 1, true);
    atomic_xchg(counters + 3, pid * 0 + 7, true);
    atomic_cas(hist + 0, -1, pid, old == 2);
    atomic_add(hist + 1 + offs, full([BLOCK], 1), offs < 3);
    let v = load(vals + pid * BLOCK + offs);
    atomic_max(fmax + (offs & 3), v, true);
    atomic_min(fmax + 4 + (offs & 3), v, true);
    let before = atomic_add(counters + 4 + (offs & 1), full([BLOCK], 1), true);
    store(hist + 16 + pid * BLOCK + offs, (before >= 0).to::<i32>());
    // Quarter-integers: every order of the adds gives the same (exact) half-precision sums.
    let q = (v * 0.5).to::<i32>().to::<f32>() * 0.25;
    atomic_add(halves + offs, q.to::<f16>(), true);
    atomic_add(bhalves + offs, q.to::<bf16>(), offs < 38);
}

fn f32_bits_equal(what: &str, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}: element {i}: got {g:e}, want {w:e}");
    }
}

fn special_floats(r: &mut rand::rngs::StdRng, n: usize, scale: f64) -> Vec<f64> {
    let mut v = randn(r, n, scale);
    let specials = [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0, -1.0, 0.5, 2.5, -2.5, 1e-30, 65504.0, 70000.0, 448.0, 500.0, -140.0];
    for (i, s) in specials.iter().enumerate() {
        v[i * 7 % n] = *s;
    }
    v
}

pub fn int_arith<R: Runtime>(rt: &R) {
    let n = 1000usize;
    let mut r = rng(50);
    let mut x: Vec<i32> = randn(&mut r, n, 1e5).iter().map(|v| *v as i32).collect();
    let mut y: Vec<i32> = randn(&mut r, n, 30.0).iter().map(|v| *v as i32).collect();
    x[0] = i32::MIN;
    y[0] = -1;
    x[1] = i32::MAX;
    y[2] = 0;
    y[3] = 64;
    y[4] = -3;
    fn on<RR: Runtime>(rt: &RR, x: &[i32], y: &[i32]) -> Vec<i32> {
        let n = x.len();
        let mut out = upload(rt, &vec![0x5a5a5a5a; 20 * n]);
        launched("int_ops", int_ops::<B>::launch(rt, blocks(n, B as usize), &upload(rt, x), &upload(rt, y), &mut out, n as i32));
        download(rt, &out)
    }
    let (got, want) = (on(rt, &x, &y), on(&Interpreter::new(), &x, &y));
    for i in 0..20 * n {
        assert_eq!(got[i], want[i], "int_ops: result {} of element {} (x {}, y {})", i / n, i % n, x[i % n], y[i % n]);
    }
}

fn check_float_arith<R: Runtime, T: FloatOps>(rt: &R, seed: u64) {
    let n = 1000usize;
    let mut r = rng(seed);
    let (x, _) = round_to::<T>(&special_floats(&mut r, n, 3.0));
    let (y, _) = round_to::<T>(&randn(&mut r, n, 3.0));
    fn on<RR: Runtime, T: FloatOps>(rt: &RR, x: &[T], y: &[T]) -> Vec<T> {
        let n = x.len();
        let mut out = poisoned::<RR, T>(rt, 23 * n);
        launched("float_ops", T::launch(rt, &upload(rt, x), &upload(rt, y), &mut out, n));
        download(rt, &out)
    }
    let (got, want) = (on(rt, &x, &y), on(&Interpreter::new(), &x, &y));
    const NAMES: [&str; 23] = [
        "add", "sub", "mul", "div", "minimum", "maximum", "fma", "floor", "ceil", "abs", "neg", "sqrt", "where", "ge", "exp", "exp2",
        "log", "log2", "sin", "cos", "tanh", "sigmoid", "rsqrt",
    ];
    // The first mismatch of each op, all reported at once.
    let mut bad: Vec<Option<String>> = vec![None; 23];
    for i in 0..23 * n {
        let (g, w) = (got[i].to_f64(), want[i].to_f64());
        let (k, e) = (i / n, i % n);
        let what = || format!("float_ops<{}> {}: element {e} (x {:e}, y {:e}): got {g:e}, want {w:e}", T::NAME, NAMES[k], x[e].to_f64(), y[e].to_f64());
        if w.is_nan() || g.is_nan() {
            if !(w.is_nan() && g.is_nan()) {
                bad[k].get_or_insert_with(what);
            }
        } else if k < 14 {
            // Exact: equal, and a zero's sign too.
            if !(g == w && g.is_sign_negative() == w.is_sign_negative()) {
                bad[k].get_or_insert_with(what);
            }
        } else {
            // Approximations: a few ulp of f32 (then one rounding to T), or 2^-20 absolute for sin/cos.
            // log and log2 are lg2.approx: 2^-22 absolute near 1, where the result is near 0.
            // exp2 flushes results under 2^-126 to zero (e.g. 2^-140, a special above).
            let abs = match k {
                15 => T::TINY.max(2f64.powi(-126)),
                16 | 17 => 2f64.powi(-21),
                18 | 19 => 1e-6,
                _ => T::TINY,
            };
            let tol = 2.0 * T::U * w.abs() + 8.0 * f32::EPSILON as f64 * w.abs() + abs;
            if !((g - w).abs() <= tol || (g.is_infinite() && g == w)) {
                bad[k].get_or_insert_with(|| format!("{} (tolerance {tol:e})", what()));
            }
        }
    }
    let bad: Vec<String> = bad.into_iter().flatten().collect();
    assert!(bad.is_empty(), "{} ops differ from the interpreter:\n{}", bad.len(), bad.join("\n"));
}

pub fn float_arith_f32<R: Runtime>(rt: &R) {
    check_float_arith::<R, f32>(rt, 51);
}

pub fn float_arith_f16<R: Runtime>(rt: &R) {
    check_float_arith::<R, f16>(rt, 52);
}

pub fn float_arith_bf16<R: Runtime>(rt: &R) {
    check_float_arith::<R, bf16>(rt, 53);
}

pub fn casts<R: Runtime>(rt: &R) {
    let n = 1000usize;
    let mut r = rng(54);
    let x: Vec<f32> = special_floats(&mut r, n, 200.0).iter().map(|v| *v as f32).collect();
    fn on<RR: Runtime>(rt: &RR, x: &[f32]) -> Outputs {
        let n = x.len();
        let (mut out, mut bits) = (filled(rt, 16 * n, f32::NAN), filled(rt, 3 * n, 0x5a5a5a5a));
        launched("cast_ops", cast_ops::<B>::launch(rt, blocks(n, B as usize), &upload(rt, x), &mut out, &mut bits, n as i32));
        (download(rt, &out), download(rt, &bits))
    }
    let (got, want) = (on(rt, &x), on(&Interpreter::new(), &x));
    for k in 0..16 {
        f32_bits_equal(&format!("cast_ops result {k}"), &got.0[k * n..(k + 1) * n], &want.0[k * n..(k + 1) * n]);
    }
    for i in 0..3 * n {
        // Bit patterns of NaNs may differ (the GPU's canonical NaN); everything else is exact.
        let nan_input = x[i % n].is_nan();
        assert!(got.1[i] == want.1[i] || nan_input, "bitcast result {} of element {} ({:e}): got {:#x}, want {:#x}", i / n, i % n, x[i % n], got.1[i], want.1[i]);
    }
}

pub fn reductions<R: Runtime>(rt: &R) {
    const RR: usize = 8;
    const CC: usize = 32;
    let progs = 5usize;
    let mut r = rng(55);
    let mut x: Vec<f32> = randn(&mut r, progs * RR * CC, 2.0).iter().map(|v| *v as f32).collect();
    x[3] = f32::NAN; // program 0, row 0: max/argmax see a NaN
    x[RR * CC + 40] = f32::NEG_INFINITY;
    x[2 * RR * CC + 5] = x[2 * RR * CC + 6]; // ties
    fn on<RR: Runtime>(rt: &RR, x: &[f32], progs: usize) -> Outputs {
        let (fl, il) = (4 * RR + 4 * CC + 3, 6 * RR + 6 * CC + 2);
        let (mut fo, mut io) = (filled(rt, progs * fl, f32::NAN), filled(rt, progs * il, 0x5a5a5a5a));
        launched("reduce_ops", reduce_ops::<8, 32>::launch(rt, progs as u32, &upload(rt, x), &mut fo, &mut io));
        (download(rt, &fo), download(rt, &io))
    }
    let (got, want) = (on(rt, &x, progs), on(&Interpreter::new(), &x, progs));
    assert_eq!(got.1, want.1, "integer reductions and arg reductions");
    for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
        // Sums may be in another order: f32 error of a 32-term sum of |x| <~ 8.
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 32.0 * f32::EPSILON * 8.0 * 32.0;
        assert!(ok, "float reduction {i}: got {g:e}, want {w:e}");
    }
}

pub fn shapes<R: Runtime>(rt: &R) {
    let progs = 3usize;
    let mut r = rng(56);
    let x: Vec<f32> = randn(&mut r, progs * 8 * 16, 1.0).iter().map(|v| *v as f32).collect();
    fn on<RR: Runtime>(rt: &RR, x: &[f32], progs: usize) -> Vec<f32> {
        let mut out = filled(rt, progs * 5 * 128, f32::NAN);
        launched("shape_ops", shape_ops::<8, 16>::launch(rt, progs as u32, &upload(rt, x), &mut out));
        download(rt, &out)
    }
    let (got, want) = (on(rt, &x, progs), on(&Interpreter::new(), &x, progs));
    assert!(want.iter().all(|v| !v.is_nan()), "the interpreter wrote everything");
    f32_bits_equal("shape_ops", &got, &want);
}

pub fn atomics<R: Runtime>(rt: &R) {
    let progs = 5usize;
    let blk = 256usize;
    let mut r = rng(57);
    let vals: Vec<f32> = randn(&mut r, progs * blk, 10.0).iter().map(|v| *v as f32).collect();
    /// (f32 totals then f16 and bf16 sums, counters then histogram, f32 max/min).
    fn on<RR: Runtime>(rt: &RR, vals: &[f32], progs: usize, blk: usize) -> (Vec<f32>, Vec<i32>, Vec<f32>) {
        let mut total = filled(rt, blk, 1.0f32);
        let mut counters = upload(rt, &[-1, 100, 0, -1, 0, 0]);
        let mut hist = upload(rt, &vec![-1i32; 16 + progs * blk]);
        let (lo, hi) = (f32::NEG_INFINITY, f32::INFINITY);
        let mut fmax = upload(rt, &[lo, lo, lo, lo, hi, hi, hi, hi]);
        let mut halves = filled(rt, blk, f16::from_f64(0.5));
        let mut bhalves = filled(rt, blk, bf16::from_f64(0.5));
        launched(
            "atomic_ops",
            atomic_ops::<256>::launch(rt, progs as u32, &mut total, &mut counters, &mut hist, &mut fmax, &upload(rt, vals), &mut halves, &mut bhalves),
        );
        let mut c = download(rt, &counters);
        c.extend(download(rt, &hist));
        let mut t = download(rt, &total);
        t.extend(download(rt, &halves).iter().map(|h| h.to_f32()));
        t.extend(download(rt, &bhalves).iter().map(|h| h.to_f32()));
        (t, c, download(rt, &fmax))
    }
    let (got, want) = (on(rt, &vals, progs, blk), on(&Interpreter::new(), &vals, progs, blk));
    assert_eq!(got.0, want.0, "atomic_add totals: f32, then f16, then bf16 (masked)");
    // hist[0] records which program saw count 2: any program may, on a GPU.
    let (mut g1, mut w1) = (got.1.clone(), want.1.clone());
    assert!((0..progs as i32).contains(&g1[6]), "atomic_cas winner {}", g1[6]);
    g1[6] = 0;
    w1[6] = 0;
    assert_eq!(g1, w1, "integer atomics (counters, histogram, returned old values)");
    assert_eq!(got.2, want.2, "atomic_max / atomic_min f32");
}
