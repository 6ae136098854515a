//! The interpreter's semantics and error reporting, through small kernels.

use dsl_core::interp::InterpError;
use dsl_core::prelude::*;

/// The line of the first source line containing `marker` in this file (for location assertions).
fn line_of(marker: &str) -> u32 {
    include_str!("interp.rs").lines().position(|l| l.contains(marker) && !l.contains("line_of(")).expect("marker") as u32 + 1
}

fn fault(r: Result<(), InterpError>) -> (String, u32, [u32; 3]) {
    match r {
        Err(InterpError::Fault { message, loc, program, .. }) => (message, loc.line, program),
        other => panic!("expected a fault, got {other:?}"),
    }
}

// ---------------------------------------------------------------- bounds

#[kernel]
fn copy_unmasked<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let v = load(x + offs); // MARK-OOB-LOAD
    store(out + offs, v);
}

#[test]
fn out_of_bounds_load_names_the_op_buffer_and_line() {
    let rt = Interpreter::new();
    let x = HostBuffer::from_slice(&[1.0f32; 100]);
    let mut out = HostBuffer::filled(128, f32::NAN);
    let (msg, line, program) = fault(copy_unmasked::<64>::launch(&rt, 2, &x, &mut out));
    assert!(msg.contains("out-of-bounds load"), "{msg}");
    assert!(msg.contains("element 100 of `x` (a buffer of 100 f32)"), "{msg}");
    assert_eq!(line, line_of("MARK-OOB-LOAD"));
    assert_eq!(program, [1, 0, 0]);
    // Program 0 ran fully before program 1 faulted.
    assert_eq!(&out.to_vec()[..64], &[1.0; 64]);
}

#[kernel]
fn copy_masked<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let m = offs < n;
    store_masked(out + offs, load_masked(x + offs, m, -1.0), m);
}

#[test]
fn masked_accesses_touch_only_enabled_lanes() {
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..37).map(|i| i as f32 * 1.5 - 3.0).collect();
    let x = HostBuffer::from_slice(&data);
    let mut out = HostBuffer::filled(37, f32::NAN);
    copy_masked::<16>::launch(&rt, 3, &x, &mut out, 37).unwrap();
    assert_eq!(out.to_vec(), data);
}

#[test]
fn out_of_bounds_store_is_an_error() {
    let rt = Interpreter::new();
    let x = HostBuffer::from_slice(&[1.0f32; 64]);
    let mut out = HostBuffer::filled(40, f32::NAN);
    let (msg, _, _) = fault(copy_masked::<64>::launch(&rt, 1, &x, &mut out, 64));
    assert!(msg.contains("out-of-bounds store") && msg.contains("element 40 of `out`"), "{msg}");
}

// ---------------------------------------------------------------- races and atomics

#[kernel]
fn everyone_stores_slot0(out: MutPtr<i32>) {
    store(out + 0, program_id(0)); // MARK-RACE
}

#[test]
fn two_programs_storing_one_address_is_a_race() {
    let rt = Interpreter::new();
    let mut out = HostBuffer::filled(1, -1i32);
    let (msg, line, program) = fault(everyone_stores_slot0::launch(&rt, 3, &mut out));
    assert!(msg.contains("data race") && msg.contains("program (0, 0, 0)") && msg.contains("element 0 of `out`"), "{msg}");
    assert_eq!(line, line_of("MARK-RACE"));
    assert_eq!(program, [1, 0, 0]);
    // With the detector off the launch runs (last writer wins in the interpreter's order).
    let rt = Interpreter::new().with_race_check(false);
    everyone_stores_slot0::launch(&rt, 3, &mut out).unwrap();
    assert_eq!(out.to_vec(), vec![2]);
}

#[kernel]
fn atomics<const BLOCK: i32>(total: MutPtr<f32>, counters: MutPtr<i32>, hist: MutPtr<i32>) {
    let pid = program_id(0);
    let offs = arange(0, BLOCK);
    // Every program adds 0.5 to every slot of `sum`.
    atomic_add(total + offs, full([BLOCK], 0.5), true);
    // counters[0] = max pid, counters[1] = min pid, counters[2] counts programs, counters[3] last xchg
    atomic_max(counters + 0, pid, true);
    atomic_min(counters + 1, pid, true);
    let old = atomic_add(counters + 2, 1, true);
    atomic_xchg(counters + 3, pid, true);
    // The program that saw count == 2 records it with a CAS from -1.
    atomic_cas(hist + 0, -1, pid, old == 2);
    // Masked-off lanes do nothing.
    atomic_add(hist + 1 + offs, full([BLOCK], 1), offs < 3);
}

#[test]
fn atomics_combine_across_programs() {
    let rt = Interpreter::new();
    let mut sum = HostBuffer::filled(8, 1.0f32);
    let mut counters = HostBuffer::from_slice(&[-1, 100, 0, -1]);
    let mut hist = HostBuffer::from_slice(&[-1, 0, 0, 0, 0, 0, 0, 0, 0]);
    atomics::<8>::launch(&rt, 5, &mut sum, &mut counters, &mut hist).unwrap();
    assert_eq!(sum.to_vec(), vec![3.5; 8]);
    assert_eq!(counters.to_vec(), vec![4, 0, 5, 4]);
    assert_eq!(hist.to_vec(), vec![2, 5, 5, 5, 0, 0, 0, 0, 0]);
}

#[kernel]
fn store_then_other_reads(buf: MutPtr<f32>) {
    let pid = program_id(0);
    if pid == 0 {
        store(buf + 0, 1.0);
    } else {
        let v = load(buf + 0);
        store(buf + 1, v);
    }
}

#[test]
fn a_load_of_another_programs_store_is_a_race() {
    let rt = Interpreter::new();
    let mut buf = HostBuffer::filled(2, 0.0f32);
    let (msg, _, _) = fault(store_then_other_reads::launch(&rt, 2, &mut buf));
    assert!(msg.contains("data race") && msg.contains("loads element 0"), "{msg}");
}

// ---------------------------------------------------------------- integer semantics

#[kernel]
fn int_ops<const BLOCK: i32>(a: Ptr<i32>, b: Ptr<i32>, out: MutPtr<i32>) {
    let offs = arange(0, BLOCK);
    let x = load(a + offs);
    let y = load(b + offs);
    store(out + offs, x / y);
    store(out + BLOCK + offs, x % y);
    store(out + 2 * BLOCK + offs, x << y);
    store(out + 3 * BLOCK + offs, x >> y);
    store(out + 4 * BLOCK + offs, (x.to::<u32>() >> y.to::<u32>()).bitcast::<i32>());
    store(out + 5 * BLOCK + offs, cdiv(x, 7));
}

#[test]
fn integer_division_remainder_and_shifts_match_the_gpu() {
    let a = [7, -7, 7, -7, i32::MIN, 5, -1, 123, 1, -8, 100, 3, 9, 0, 14, 15];
    let b = [2, 2, -2, -2, -1, 0, 0, 1, 31, 1, 32, 33, -1, 3, 2, 4];
    let rt = Interpreter::new();
    let (ba, bb) = (HostBuffer::from_slice(&a), HostBuffer::from_slice(&b));
    let mut out = HostBuffer::filled(16 * 6, 12345i32);
    int_ops::<16>::launch(&rt, 1, &ba, &bb, &mut out).unwrap();
    let o = out.to_vec();
    for i in 0..16 {
        let (x, y) = (a[i], b[i]);
        let div = if y == 0 { -1 } else { x.wrapping_div(y) };
        let rem = if y == 0 { x } else { x.wrapping_rem(y) };
        let shl = if (y as u32) >= 32 { 0 } else { x << y };
        let shr = if (y as u32) >= 32 { if x < 0 { -1 } else { 0 } } else { x >> y };
        let ushr = if (y as u32) >= 32 { 0 } else { ((x as u32) >> y) as i32 };
        let cd = (x.wrapping_add(7) - 1).wrapping_div(7);
        assert_eq!([o[i], o[16 + i], o[32 + i], o[48 + i], o[64 + i], o[80 + i]], [div, rem, shl, shr, ushr, cd], "a={x} b={y}");
    }
}

// ---------------------------------------------------------------- float semantics

#[kernel]
fn min_max_nan<const BLOCK: i32>(a: Ptr<f32>, b: Ptr<f32>, out: MutPtr<f32>, flags: MutPtr<bool>) {
    let offs = arange(0, BLOCK);
    let x = load(a + offs);
    let y = load(b + offs);
    store(out + offs, minimum(x, y));
    store(out + BLOCK + offs, maximum(x, y));
    store(flags + offs, x != y);
    store(flags + BLOCK + offs, x < y);
}

#[test]
fn minimum_maximum_propagate_nan_and_order_signed_zeros() {
    let a = [1.0, f32::NAN, 0.0, -0.0, 3.0, f32::NEG_INFINITY, 2.0, f32::NAN];
    let b = [2.0, 1.0, -0.0, 0.0, f32::NAN, 5.0, 2.0, f32::NAN];
    let rt = Interpreter::new();
    let mut out = HostBuffer::filled(16, 99.0f32);
    let mut flags = HostBuffer::filled(16, false);
    min_max_nan::<8>::launch(&rt, 1, &HostBuffer::from_slice(&a), &HostBuffer::from_slice(&b), &mut out, &mut flags).unwrap();
    let (o, f) = (out.to_vec(), flags.to_vec());
    let bits = |v: f32| if v.is_nan() { u32::MAX } else { v.to_bits() };
    let want_min = [1.0, f32::NAN, -0.0, -0.0, f32::NAN, f32::NEG_INFINITY, 2.0, f32::NAN];
    let want_max = [2.0, f32::NAN, 0.0, 0.0, f32::NAN, 5.0, 2.0, f32::NAN];
    for i in 0..8 {
        assert_eq!(bits(o[i]), bits(want_min[i]), "min {i}");
        assert_eq!(bits(o[8 + i]), bits(want_max[i]), "max {i}");
        assert_eq!(f[i], a[i] != b[i], "ne {i}");
        assert_eq!(f[8 + i], a[i] < b[i], "lt {i}");
    }
}

#[kernel]
fn casts<const BLOCK: i32>(x: Ptr<f32>, e4: MutPtr<e4m3>, e5: MutPtr<e5m2>, h: MutPtr<f16>, b: MutPtr<bf16>, i: MutPtr<i32>) {
    let offs = arange(0, BLOCK);
    let v = load(x + offs);
    store(e4 + offs, v.to::<e4m3>());
    store(e5 + offs, v.to::<e5m2>());
    store(h + offs, v.to::<f16>());
    store(b + offs, v.to::<bf16>());
    store(i + offs, v.to::<i32>());
}

#[test]
fn casts_round_to_nearest_even_and_saturate() {
    let xs = [1.0625f32, 1000.0, -1e30, f32::NAN, 0.1, 65520.0, -2.75, 3e9];
    let rt = Interpreter::new();
    let mut e4 = HostBuffer::filled(8, e4m3::from_f32(0.0));
    let mut e5 = HostBuffer::filled(8, e5m2::from_f32(0.0));
    let mut h = HostBuffer::filled(8, f16::ZERO);
    let mut b = HostBuffer::filled(8, bf16::ZERO);
    let mut i = HostBuffer::filled(8, 0i32);
    casts::<8>::launch(&rt, 1, &HostBuffer::from_slice(&xs), &mut e4, &mut e5, &mut h, &mut b, &mut i).unwrap();
    let e4: Vec<f32> = e4.to_vec().iter().map(|v| v.to_f32()).collect();
    assert_eq!(e4[0], 1.0); // tie to even
    assert_eq!(e4[1], 448.0); // saturate
    assert_eq!(e4[2], -448.0);
    assert!(e4[3].is_nan());
    assert_eq!(e5.to_vec()[1].to_f32(), 1024.0);
    assert_eq!(e5.to_vec()[2].to_f32(), -57344.0);
    assert!(h.to_vec()[5].to_f32().is_infinite()); // 65520 ties up to infinity in f16
    assert_eq!(b.to_vec()[4], bf16::from_f32(0.1));
    assert_eq!(i.to_vec(), vec![1, 1000, i32::MIN, 0, 0, 65520, -2, i32::MAX]);
}

// ---------------------------------------------------------------- reductions, broadcasting, shapes

#[kernel]
fn reductions<const R: i32, const C: i32>(x: Ptr<f32>, out: MutPtr<f32>, idx: MutPtr<i32>) {
    let rows = arange(0, R);
    let cols = arange(0, C);
    let t = load(x + rows.expand_dims(1) * C + cols.expand_dims(0));
    store(out + rows, sum(t, 1));
    store(out + R + cols, max(t, 0));
    store(out + R + C + rows, min(t, 1));
    store(idx + rows, argmax(t, 1));
    store(idx + R + cols, argmin(t, 0));
    let kept = reduce::<f32, f32>(t, ReduceOp::Sum, 0, true);
    store(out + R + C + R + cols.expand_dims(0), kept);
}

#[test]
fn reductions_along_each_axis() {
    let (r, c) = (4usize, 8usize);
    let mut x: Vec<f32> = (0..r * c).map(|i| ((i * 37 % 23) as f32) - 11.0).collect();
    x[2 * c + 5] = f32::NAN; // row 2, col 5
    let rt = Interpreter::new();
    let mut out = HostBuffer::filled(r + c + r + c, 0.0f32);
    let mut idx = HostBuffer::filled(r + c, -1i32);
    reductions::<4, 8>::launch(&rt, 1, &HostBuffer::from_slice(&x), &mut out, &mut idx).unwrap();
    let (o, ix) = (out.to_vec(), idx.to_vec());
    for i in 0..r {
        let row = &x[i * c..(i + 1) * c];
        let s: f32 = row.iter().map(|&v| v as f64).sum::<f64>() as f32;
        assert_eq!(o[i].to_bits(), s.to_bits(), "sum row {i}");
        if i == 2 {
            assert!(o[r + c + i].is_nan(), "min propagates NaN");
            assert_eq!(ix[i], 5, "argmax takes the NaN");
        } else {
            assert_eq!(o[r + c + i], row.iter().cloned().fold(f32::INFINITY, f32::min));
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(ix[i] as usize, row.iter().position(|&v| v == m).unwrap(), "first argmax");
        }
    }
    for j in 0..c {
        let col: Vec<f32> = (0..r).map(|i| x[i * c + j]).collect();
        if j == 5 {
            assert!(o[r + j].is_nan());
            assert!(o[r + c + r + j].is_nan());
        } else {
            assert_eq!(o[r + j], col.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
            let m = col.iter().cloned().fold(f32::INFINITY, f32::min);
            assert_eq!(ix[r + j] as usize, col.iter().position(|&v| v == m).unwrap());
            assert_eq!(o[r + c + r + j], col.iter().map(|&v| v as f64).sum::<f64>() as f32);
        }
    }
}

#[kernel]
fn outer<const M: i32, const N: i32>(a: Ptr<f32>, b: Ptr<f32>, out: MutPtr<f32>) {
    let i = arange(0, M);
    let j = arange(0, N);
    let x = load(a + i).expand_dims(1);
    let y = load(b + j).expand_dims(0);
    let prod = x * y; // [M, 1] * [1, N] -> [M, N]
    let picked = where_(prod > 0.0, prod, -1.0);
    let flat = picked.trans().reshape([M * N]);
    store(out + arange(0, M * N), flat);
}

#[test]
fn broadcasting_where_transpose_and_reshape() {
    let a = [1.0f32, -2.0, 3.0, 0.5];
    let b = [2.0f32, 1.0];
    let rt = Interpreter::new();
    let mut out = HostBuffer::filled(8, f32::NAN);
    outer::<4, 2>::launch(&rt, 1, &HostBuffer::from_slice(&a), &HostBuffer::from_slice(&b), &mut out).unwrap();
    // transposed: out[j * 4 + i] = where(a[i] * b[j] > 0, a[i] * b[j], -1)
    let mut want = vec![];
    for bj in b {
        for ai in a {
            let p = ai * bj;
            want.push(if p > 0.0 { p } else { -1.0 });
        }
    }
    assert_eq!(out.to_vec(), want);
}

// ---------------------------------------------------------------- control flow

#[kernel]
fn loop_sum<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32, step_blocks: i32) {
    let offs = arange(0, BLOCK);
    let mut acc = zeros::<f32>([BLOCK]);
    let mut count = full::<i32>((), 0);
    for start in (0..n).step_by(BLOCK * step_blocks) {
        let m = start + offs < n;
        acc += load_masked(x + start + offs, m, 0.0);
        count += 1;
    }
    let total = sum(acc, 0);
    if count > 2 {
        store(out + 0, total);
    } else {
        store(out + 0, -total);
    }
    let flag = if BLOCK > 8 { 1.0 } else { 2.0 };
    store(out + 1, full::<f32>((), flag) + count.to::<f32>());
}

#[test]
fn runtime_loops_and_branches_carry_values() {
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..100).map(|i| (i % 7) as f32 - 2.0).collect();
    let x = HostBuffer::from_slice(&data);
    let mut out = HostBuffer::filled(2, f32::NAN);
    loop_sum::<16>::launch(&rt, 1, &x, &mut out, 100, 1).unwrap();
    let total: f32 = data.iter().sum();
    assert_eq!(out.to_vec(), vec![total, 1.0 + 7.0]);
    // A stride of two blocks visits every other block: 4 iterations, half the data.
    loop_sum::<16>::launch(&rt, 1, &x, &mut out, 100, 2).unwrap();
    let half: f32 = data.chunks(16).step_by(2).flatten().sum();
    assert_eq!(out.to_vec(), vec![half, 1.0 + 4.0]);
    // Two iterations take the else branch.
    loop_sum::<8>::launch(&rt, 1, &x, &mut out, 16, 1).unwrap();
    let first: f32 = data[..16].iter().sum();
    assert_eq!(out.to_vec(), vec![-first, 2.0 + 2.0]);
}

#[test]
fn a_non_positive_loop_step_is_an_error() {
    let rt = Interpreter::new();
    let x = HostBuffer::from_slice(&[1.0f32; 16]);
    let mut out = HostBuffer::filled(2, f32::NAN);
    let (msg, _, _) = fault(loop_sum::<16>::launch(&rt, 1, &x, &mut out, 16, 0));
    assert!(msg.contains("loop step must be positive"), "{msg}");
}

// ---------------------------------------------------------------- block pointers

#[kernel]
fn block_copy<const BM: i32, const BN: i32>(src: Ptr<f32>, dst: MutPtr<f32>, m: i32, n: i32, ld: i32) {
    let (pm, pn) = (program_id(0), program_id(1));
    let a = make_block_ptr(src, [m, n], (ld, 1), (pm * BM, pn * BN), [BM, BN], [1, 0]);
    let b = make_block_ptr(dst, [m, n], (ld, 1), (pm * BM, pn * BN), [BM, BN], [1, 0]);
    let t = load_block(a) + 1.0;
    store_block(b, t);
    let shifted = a.advance([0, BN]);
    let nanpad = load_block_padded(shifted, Padding::Nan);
    let outside = ((pn + 1) * BN + arange(0, BN).expand_dims(0) >= n) | (pm * BM + arange(0, BM).expand_dims(1) >= m);
    device_assert((nanpad == nanpad) | outside, "NaN only outside");
    device_assert((nanpad != nanpad) | !outside, "NaN everywhere outside");
}

#[test]
fn block_pointers_bounds_check_and_pad() {
    let (m, n, ld) = (5usize, 7usize, 9usize);
    let src: Vec<f32> = (0..m * ld).map(|i| i as f32).collect();
    let rt = Interpreter::new();
    let mut dst = HostBuffer::filled(m * ld, f32::NAN);
    block_copy::<4, 4>::launch(&rt, (2, 2), &HostBuffer::from_slice(&src), &mut dst, m as i32, n as i32, ld as i32).unwrap();
    let d = dst.to_vec();
    for i in 0..m {
        for j in 0..ld {
            if j < n {
                assert_eq!(d[i * ld + j], src[i * ld + j] + 1.0);
            } else {
                assert!(d[i * ld + j].is_nan(), "padding columns stay unwritten");
            }
        }
    }
}

// ---------------------------------------------------------------- dot

#[kernel]
fn dot_kernel<A: Float, B: Float, const M: i32, const N: i32, const K: i32>(a: Ptr<A>, b: Ptr<B>, c: MutPtr<f32>)
where
    A: dsl_core::lang::DotOperands<B>,
{
    let (i, j, k) = (arange(0, M), arange(0, N), arange(0, K));
    let ta = load(a + i.expand_dims(1) * K + k.expand_dims(0));
    let tb = load(b + k.expand_dims(1) * N + j.expand_dims(0));
    let acc = full([M, N], 0.25);
    store(c + i.expand_dims(1) * N + j.expand_dims(0), dot(ta, tb, acc));
}

#[test]
fn dot_mixed_fp8_accumulates_exact_products_in_f32() {
    let (m, n, k) = (16, 8, 32);
    let av: Vec<e4m3> = (0..m * k).map(|i| e4m3::from_f32(((i * 7 % 13) as f32 - 6.0) * 0.375)).collect();
    let bv: Vec<e5m2> = (0..k * n).map(|i| e5m2::from_f32(((i * 5 % 11) as f32 - 5.0) * 0.5)).collect();
    let rt = Interpreter::new();
    let mut c = HostBuffer::filled(m * n, f32::NAN);
    dot_kernel::<e4m3, e5m2, 16, 8, 32>::launch(&rt, 1, &HostBuffer::from_slice(&av), &HostBuffer::from_slice(&bv), &mut c).unwrap();
    let c = c.to_vec();
    for i in 0..m {
        for j in 0..n {
            let s: f64 = 0.25 + (0..k).map(|kk| av[i * k + kk].to_f64() * bv[kk * n + j].to_f64()).sum::<f64>();
            assert_eq!(c[i * n + j] as f64, s, "({i}, {j}): small fp8 sums are exact in f32");
        }
    }
}

// ---------------------------------------------------------------- grid, printing, asserts

#[kernel]
fn grid_ids(out: MutPtr<i32>) {
    let (x, y, z) = (program_id(0), program_id(1), program_id(2));
    let (nx, ny) = (num_programs(0), num_programs(1));
    let lin = (z * ny + y) * nx + x;
    store(out + lin * 3, x * 100 + y * 10 + z);
    store(out + lin * 3 + 1, nx * 100 + ny * 10 + num_programs(2));
    store(out + lin * 3 + 2, lin);
}

#[test]
fn program_ids_cover_a_3d_grid() {
    let rt = Interpreter::new();
    let mut out = HostBuffer::filled(3 * 24, -1i32);
    grid_ids::launch(&rt, (4, 3, 2), &mut out).unwrap();
    let o = out.to_vec();
    for z in 0..2 {
        for y in 0..3 {
            for x in 0..4 {
                let lin = (z * 3 + y) * 4 + x;
                assert_eq!(&o[lin * 3..lin * 3 + 3], &[(x * 100 + y * 10 + z) as i32, 432, lin as i32]);
            }
        }
    }
}

#[kernel]
fn checked(x: Ptr<f32>) {
    let v = load(x + arange(0, 4));
    device_print("v =", v);
    device_assert(v >= 0.0, "inputs must be non-negative"); // MARK-ASSERT
}

#[test]
fn device_assert_fails_the_launch_with_its_message_and_line() {
    let rt = Interpreter::new();
    checked::launch(&rt, 1, &HostBuffer::from_slice(&[0.0f32, 1.0, 2.0, 3.0])).unwrap();
    let (msg, line, _) = fault(checked::launch(&rt, 1, &HostBuffer::from_slice(&[0.0f32, 1.0, -2.0, 3.0])));
    assert!(msg.contains("device_assert failed at element 2: inputs must be non-negative"), "{msg}");
    assert_eq!(line, line_of("MARK-ASSERT"));
}

// ---------------------------------------------------------------- prefetch and grid dependency control

#[kernel]
fn prefetch_then_copy<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32, reach: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    gdc_launch_dependents();
    prefetch_l2(x + offs, offs < reach); // MARK-PREFETCH
    gdc_wait();
    let m = offs < n;
    store_masked(out + offs, load_masked(x + offs, m, 0.0), m);
}

#[test]
fn prefetch_changes_nothing_but_is_bounds_checked() {
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..50).map(|i| i as f32 * 0.75 - 9.0).collect();
    let x = HostBuffer::from_slice(&data);
    let mut out = HostBuffer::filled(50, f32::NAN);
    prefetch_then_copy::<32>::launch(&rt, 2, &x, &mut out, 50, 50).unwrap();
    assert_eq!(out.to_vec(), data);
    // A mask that lets the prefetch past the buffer is an error at its line, like a load's.
    let (msg, line, program) = fault(prefetch_then_copy::<32>::launch(&rt, 2, &x, &mut out, 50, 64));
    assert!(msg.contains("out-of-bounds prefetch") && msg.contains("element 50 of `x`"), "{msg}");
    assert_eq!(line, line_of("MARK-PREFETCH"));
    assert_eq!(program, [1, 0, 0]);
}

// ---------------------------------------------------------------- fences: the last program reads the others' stores

/// Each program stores its block's sum into `parts[p]`, then takes a ticket; the program that takes the
/// last one adds every part into `total` and resets the counter. `RELEASE` / `ACQUIRE` leave out the
/// fence on either side, which the race checker must then refuse.
#[kernel]
fn last_program_sums<const BLOCK: i32, const RELEASE: bool, const ACQUIRE: bool>(x: Ptr<f32>, parts: MutPtr<f32>, ticket: MutPtr<i32>, total: MutPtr<f32>) {
    let p = program_id(0);
    let offs = p * BLOCK + arange(0, BLOCK);
    store(parts + p, sum(load(x + offs), 0));
    if RELEASE {
        fence();
    }
    let t = atomic_add(ticket, 1, true);
    if t == num_programs(0) - 1 {
        if ACQUIRE {
            fence();
        }
        let mut acc = zeros::<f32>([1]);
        for i in 0..num_programs(0) {
            acc = acc + load(parts + i + arange(0, 1)); // MARK-ACQUIRED
        }
        store(total + arange(0, 1), acc);
        atomic_xchg(ticket, 0, true);
    }
}

#[test]
fn a_fence_orders_other_programs_stores_before_the_last_ticket() {
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = HostBuffer::from_slice(&data);
    let (mut parts, mut ticket, mut total) = (HostBuffer::filled(4, f32::NAN), HostBuffer::from_slice(&[0i32]), HostBuffer::filled(1, f32::NAN));
    for _ in 0..2 {
        last_program_sums::<16, true, true>::launch(&rt, 4, &x, &mut parts, &mut ticket, &mut total).unwrap();
        let want: f32 = (0..4).map(|p| data[p * 16..][..16].iter().sum::<f32>()).sum();
        assert!((total.to_vec()[0] - want).abs() <= 1e-5, "{:?} vs {want}", total.to_vec());
        assert_eq!(ticket.to_vec(), vec![0], "the last program resets the ticket");
    }
    for (release, acquire) in [(false, true), (true, false)] {
        let r = if release { last_program_sums::<16, true, false>::launch(&rt, 4, &x, &mut parts, &mut ticket, &mut total) } else { last_program_sums::<16, false, true>::launch(&rt, 4, &x, &mut parts, &mut ticket, &mut total) };
        let (msg, line, program) = fault(r);
        assert!(msg.contains("data race") && msg.contains("element 0 of `parts`"), "release {release}, acquire {acquire}: {msg}");
        assert_eq!((line, program), (line_of("MARK-ACQUIRED"), [3, 0, 0]));
        ticket = HostBuffer::from_slice(&[0i32]);
    }
}

// ---------------------------------------------------------------- declared instances and launch options

/// `out = x * (SCALE ? 2 : 1) + OFFSET` over blocks of `BLOCK`.
#[kernel(instances(BLOCK in [16, 32], (SCALE, OFFSET) in [(false, 0), (true, -3)] | (SCALE in bool, OFFSET = 7)))]
fn scaled_copy<T: Float, const BLOCK: i32, const SCALE: bool, const OFFSET: i32>(x: Ptr<T>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let m = offs < n;
    let v = load_masked(x + offs, m, 0.0).to::<f32>();
    let v = if SCALE { v * 2.0 } else { v };
    store_masked(out + offs, v + OFFSET, m);
}

#[test]
fn declared_instances_are_listed_converted_and_launched() {
    // The product of BLOCK with the union: (false, 0), (true, -3), (false, 7), (true, 7).
    assert_eq!(ScaledCopyInstance::ALL.len(), 8);
    assert_eq!(ScaledCopyInstance::NAMES, ["BLOCK", "SCALE", "OFFSET"]);
    let inst = ScaledCopyInstance { block: 32, scale: true, offset: -3 };
    assert!(ScaledCopyInstance::ALL.contains(&inst));
    assert_eq!(inst.to_string(), "BLOCK=32,SCALE=1,OFFSET=-3");
    let cfg = inst.config().with("num_warps", 8);
    assert_eq!(ScaledCopyInstance::from_config(&cfg).unwrap(), inst);

    // Launching the instance runs the same specialization as the static launch.
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..70).map(|i| i as f32 * 0.25 - 4.0).collect();
    let x = HostBuffer::from_slice(&data);
    let mut a = HostBuffer::filled(70, f32::NAN);
    let mut b = HostBuffer::filled(70, f32::NAN);
    inst.launch::<f32, _>(&rt, 3, &x, &mut a, 70).unwrap();
    scaled_copy::<f32, 32, true, -3>::launch(&rt, 3, &x, &mut b, 70).unwrap();
    assert_eq!(a.to_vec(), data.iter().map(|v| v * 2.0 - 3.0).collect::<Vec<_>>());
    assert_eq!(a.to_vec(), b.to_vec());
    assert_eq!(inst.spec::<f32>().unwrap().id, scaled_copy::<f32, 32, true, -3>::spec().id);
}

#[test]
fn an_undeclared_instance_is_an_error_listing_the_declared() {
    let rt = Interpreter::new();
    let x = HostBuffer::from_slice(&[1.0f32; 8]);
    let mut out = HostBuffer::filled(8, f32::NAN);
    let bad = ScaledCopyInstance { block: 64, scale: true, offset: 7 };
    let e = bad.launch::<f32, _>(&rt, 1, &x, &mut out, 8).unwrap_err().to_string();
    assert!(e.contains("`scaled_copy` has no declared instance BLOCK=64,SCALE=1,OFFSET=7"), "{e}");
    assert!(e.contains("BLOCK=16,SCALE=0,OFFSET=0") && e.contains("BLOCK=32,SCALE=1,OFFSET=7"), "{e}");
    assert!(out.to_vec().iter().all(|v| v.is_nan()), "nothing ran");
    // A config missing a constexpr, or with one out of range, names it.
    let e = ScaledCopyInstance::from_config(&dsl_core::tune::Config::new(&[("BLOCK", 16), ("SCALE", 1)])).unwrap_err();
    assert!(e.message.contains("no value for constexpr `OFFSET`"), "{e}");
    let e = ScaledCopyInstance::from_config(&dsl_core::tune::Config::new(&[("BLOCK", 16), ("SCALE", 2), ("OFFSET", 0)])).unwrap_err();
    assert!(e.message.contains("SCALE=2 is out of range"), "{e}");
}

#[test]
fn launch_options_are_checked_and_do_not_change_results() {
    let rt = Interpreter::new();
    let data: Vec<f32> = (0..50).map(|i| i as f32 - 20.0).collect();
    let x = HostBuffer::from_slice(&data);
    let mut out = HostBuffer::filled(50, f32::NAN);
    let launch = Launch::from(4).num_warps(8).num_stages(2).programmatic(true);
    copy_masked::<16>::launch(&rt, launch, &x, &mut out, 50).unwrap();
    assert_eq!(out.to_vec(), data);
    for (bad, why) in [
        (Launch::from(4).num_warps(3), "num_warps 3 must be a power of two"),
        (Launch::from(4).num_warps(64), "num_warps 64 must be a power of two"),
        (Launch::from(4).num_stages(0), "num_stages 0 must be between 1 and 8"),
        (Grid::from(4).with(LaunchOptions { cluster: Some([2, 1, 1]), ..LaunchOptions::default() }), "cluster launch"),
    ] {
        let e = copy_masked::<16>::launch(&rt, bad, &x, &mut out, 50).unwrap_err().to_string();
        assert!(e.contains("bad launch of kernel `copy_masked`") && e.contains(why), "{e}");
    }
    let c: dsl_core::tune::Config = "BLOCK_M=64,num_warps=8,num_stages=4,programmatic=1".parse().unwrap();
    let o = LaunchOptions::from_config(&c).unwrap();
    assert_eq!((o.num_warps, o.num_stages, o.programmatic), (Some(8), Some(4), Some(true)));
    assert!(LaunchOptions::from_config(&"num_warps=6".parse().unwrap()).unwrap_err().contains("num_warps=6"));
    // Options given later replace earlier ones; unset ones keep them.
    let l = Launch::from(1).num_warps(2).options(LaunchOptions { num_stages: Some(5), ..LaunchOptions::default() });
    assert_eq!((l.options.num_warps, l.options.num_stages), (Some(2), Some(5)));
}

// ---------------------------------------------------------------- element values as constants

/// Values of types without Rust literals, wherever a literal goes: `other`, `full`, `where_`, both
/// sides of arithmetic.
#[kernel]
fn half_consts<const BLOCK: i32>(x: Ptr<f16>, out: MutPtr<f16>, q: MutPtr<e4m3>, n: i32) {
    let offs = arange(0, BLOCK);
    let m = offs < n;
    let v = load_masked(x + offs, m, f16::ZERO);
    let two = full([BLOCK], f16::from_f32(2.0));
    let y = where_(v > f16::ZERO, v * two, f16::NEG_ONE) + f16::ONE;
    let y = f16::from_f32(0.5) * y - f16::from_f32(0.25);
    store_masked(out + offs, y, m);
    store_masked(q + offs, full([BLOCK], e4m3::from_f32(-1.5)), m);
}

#[test]
fn element_values_work_where_literals_do() {
    let rt = Interpreter::new();
    let data: Vec<f16> = (0..13).map(|i| f16::from_f32(i as f32 * 0.5 - 3.0)).collect();
    let x = HostBuffer::from_slice(&data);
    let mut out = HostBuffer::filled(16, f16::NAN);
    let mut q = HostBuffer::filled(16, e4m3::NAN);
    half_consts::<16>::launch(&rt, 1, &x, &mut out, &mut q, 13).unwrap();
    let out = out.to_vec();
    for (i, &v) in data.iter().enumerate() {
        let v = v.to_f64();
        let want = 0.5 * (if v > 0.0 { 2.0 * v } else { -1.0 } + 1.0) - 0.25;
        assert_eq!(out[i].to_f64(), want, "element {i}");
    }
    assert!(out[13..].iter().all(|v| v.is_nan()), "masked-off elements stay poisoned");
    assert!(q.to_vec()[..13].iter().all(|v| v.to_f32() == -1.5));
}
