//! Specialization errors (at the user's line), the IR text form, and the verifier.

use dsl_core::ir::verify::verify;
use dsl_core::ir::{Block, Const, Kernel, Loc, Op, OpKind, Param, ValueId};
use dsl_core::prelude::*;
use dsl_core::types::{DType, ElemTy, Type};
use dsl_core::CompileError;

fn line_of(marker: &str) -> u32 {
    include_str!("ir.rs").lines().position(|l| l.contains(marker) && !l.contains("line_of(")).expect("marker") as u32 + 1
}

fn compile_err(r: Result<Kernel, CompileError>) -> CompileError {
    match r {
        Err(e) => e,
        Ok(k) => panic!("expected a specialization error, got\n{}", dsl_core::ir::print::print(&k, true)),
    }
}

#[kernel]
fn mismatched<const A: i32, const B: i32>(out: MutPtr<f32>) {
    let x = arange(0, A).to::<f32>();
    let y = arange(0, B).to::<f32>();
    store(out + arange(0, A), x + y); // MARK-MISMATCH
}

#[test]
fn shape_mismatch_names_the_user_line_and_both_shapes() {
    assert!(mismatched::<16, 16>::build().is_ok());
    let e = compile_err(mismatched::<64, 32>::build());
    assert_eq!(e.loc.line, line_of("MARK-MISMATCH"));
    assert!(e.loc.file.ends_with("ir.rs"));
    assert!(e.message.contains("shapes [64] and [32] do not broadcast together"), "{}", e.message);
    assert_eq!(e.kernel, "mismatched<A=64, B=32>");
    let shown = e.to_string();
    assert!(shown.starts_with("error: ") && shown.contains("--> dsl-core/tests/ir.rs:") && shown.contains("in kernel `mismatched<A=64, B=32>`"), "{shown}");
}

#[kernel]
fn ranged<const N: i32>(out: MutPtr<i32>) {
    let r = arange(0, N); // MARK-ARANGE
    store(out + r, r);
}

#[test]
fn arange_length_must_be_a_power_of_two_and_not_huge() {
    let e = compile_err(ranged::<12>::build());
    assert_eq!(e.loc.line, line_of("MARK-ARANGE"));
    assert!(e.message.contains("arange(0, 12) has 12 elements; the length must be a power of two"), "{}", e.message);
    let e = compile_err(ranged::<{ 1 << 21 }>::build());
    assert!(e.message.contains("more than 1048576 elements"), "{}", e.message);
    let e = compile_err(ranged::<0>::build());
    assert!(e.message.contains("is empty"), "{}", e.message);
}

#[kernel]
fn bad_dot<const K1: i32, const K2: i32>(a: Ptr<f16>, out: MutPtr<f32>) {
    let x = load(a + arange(0, 16 * K1)).reshape([16, K1]);
    let y = load(a + arange(0, 16 * K2)).reshape([K2, 16]);
    let c = dot(x, y, zeros::<f32>([16, 16])); // MARK-DOT
    store(out + arange(0, 256), c.reshape([256]));
}

#[test]
fn dot_with_mismatched_inner_dims_is_an_error() {
    assert!(bad_dot::<16, 16>::build().is_ok());
    let e = compile_err(bad_dot::<16, 32>::build());
    assert_eq!(e.loc.line, line_of("MARK-DOT"));
    assert!(e.message.contains("inner dimensions differ (16 vs 32)"), "{}", e.message);
}

#[kernel]
fn reshape_bad<const N: i32>(out: MutPtr<f32>) {
    let x = zeros::<f32>([16]).reshape([N]); // MARK-RESHAPE
    store(out + arange(0, 16), x);
}

#[test]
fn reshape_must_keep_the_element_count() {
    let e = compile_err(reshape_bad::<8>::build());
    assert_eq!(e.loc.line, line_of("MARK-RESHAPE"));
    assert!(e.message.contains("cannot reshape [16] (16 elements) to [8] (8 elements)"), "{}", e.message);
}

#[kernel]
fn growing_carry(out: MutPtr<f32>, n: i32) {
    let mut acc = zeros::<f32>([16]);
    for _i in 0..n { // MARK-LOOP
        acc = zeros::<f32>([32]);
    }
    store(out + arange(0, 16), acc);
}

#[test]
fn a_loop_carried_value_must_keep_its_shape() {
    let e = compile_err(growing_carry::build());
    assert_eq!(e.loc.line, line_of("MARK-LOOP"));
    assert!(e.message.contains("`acc` changes from shape [16] to [32] inside this loop"), "{}", e.message);
}

#[kernel]
fn tile_condition(x: Ptr<f32>, out: MutPtr<f32>) {
    let v = load(x + arange(0, 4));
    let mut r = v;
    if v > 0.0 { // MARK-IF
        r = -v;
    }
    store(out + arange(0, 4), r);
}

#[test]
fn an_if_on_a_tile_is_an_error_that_suggests_where() {
    let e = compile_err(tile_condition::build());
    assert_eq!(e.loc.line, line_of("MARK-IF"));
    assert!(e.message.contains("must be a scalar") && e.message.contains("where_"), "{}", e.message);
}

#[kernel]
fn tiny_add<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let m = offs < n;
    store_masked(out + offs, load_masked(x + offs, m, 0.0) * 2.0, m);
}

#[test]
fn ir_text_form_is_stable() {
    let k = tiny_add::<4>::build().unwrap();
    let want = "\
kernel tiny_add<BLOCK=4>(%0: ptr<f32> /*x*/, %1: mut_ptr<f32> /*out*/, %2: i32 /*n*/) {
  %3 = program_id 0 : i32
  %4 = const 4 : i32
  %5 = mul %3, %4 : i32
  %6 = arange 0, 4 : i32[4]
  %7 = broadcast %5 to [4] : i32[4]
  %8 = add %7, %6 : i32[4]
  %9 = broadcast %2 to [4] : i32[4]
  %10 = cmp lt %8, %9 : bool[4]
  %11 = broadcast %1 to [4] : mut_ptr<f32>[4]
  %12 = addptr %11, %8 : mut_ptr<f32>[4]
  %13 = broadcast %0 to [4] : ptr<f32>[4]
  %14 = addptr %13, %8 : ptr<f32>[4]
  %15 = const 0.0 : f32
  %16 = broadcast %15 to [4] : f32[4]
  %17 = load %14, mask %10, other %16 : f32[4]
  %18 = const 2.0 : f32
  %19 = broadcast %18 to [4] : f32[4]
  %20 = mul %17, %19 : f32[4]
  store %12, %20, mask %10
}
";
    assert_eq!(dsl_core::ir::print::print(&k, false), want);
    // With locations, every op names its line in this file.
    let with_locs = dsl_core::ir::print::print(&k, true);
    assert!(with_locs.lines().skip(1).filter(|l| l.contains("=") || l.contains("store")).all(|l| l.contains("// dsl-core/tests/ir.rs:")));
}

#[test]
fn the_verifier_rejects_malformed_ir() {
    let good = tiny_add::<4>::build().unwrap();
    assert!(verify(&good).is_ok());

    // A use before its definition.
    let mut k = good.clone();
    let first = k.body.ops.remove(0);
    k.body.ops.insert(3, first);
    let e = verify(&k).unwrap_err();
    assert!(e.message.contains("used where it is not defined"), "{}", e.message);

    // A wrong result type.
    let mut k = good.clone();
    let r = k.body.ops[0].results[0];
    k.types[r.0 as usize] = Type::scalar(DType::I64);
    assert!(verify(&k).unwrap_err().message.contains("result types"));

    // A store through a read-only pointer.
    let mut k = good.clone();
    k.types[1] = Type::new(ElemTy::Ptr { pointee: DType::F32, mutable: false }, vec![]);
    let bcast = k.body.ops.iter().position(|o| matches!(o.kind, OpKind::Broadcast { src: ValueId(1), .. })).unwrap();
    for i in [bcast] {
        let r = k.body.ops[i].results[0];
        k.types[r.0 as usize] = Type::new(ElemTy::Ptr { pointee: DType::F32, mutable: false }, vec![4]);
        let r2 = k.body.ops[i + 1].results[0];
        k.types[r2.0 as usize] = Type::new(ElemTy::Ptr { pointee: DType::F32, mutable: false }, vec![4]);
    }
    assert!(verify(&k).unwrap_err().message.contains("read-only"), "{:?}", verify(&k));

    // A yield in the kernel body, and a value defined twice.
    let loc = Loc::UNKNOWN;
    let k = Kernel {
        name: "bad".into(),
        constexprs: vec![],
        params: vec![Param { name: "n".into(), value: ValueId(0) }],
        types: vec![Type::scalar(DType::I32), Type::scalar(DType::I32)],
        body: Block { args: vec![], ops: vec![Op { kind: OpKind::Yield { values: vec![ValueId(0)] }, results: vec![], loc }] },
    };
    assert!(verify(&k).unwrap_err().message.contains("yield may only end"));
    let twice = Op { kind: OpKind::Constant { value: Const::I(1), dtype: DType::I32 }, results: vec![ValueId(1)], loc };
    let k = Kernel { body: Block { args: vec![], ops: vec![twice.clone(), twice] }, ..k };
    assert!(verify(&k).unwrap_err().message.contains("defined twice"));
}

#[test]
fn promotion_rules_follow_the_documented_table() {
    use dsl_core::lang::Promote;
    fn out<A: Promote<B>, B>() -> DType {
        <A::Out as Elem>::DTYPE
    }
    assert_eq!(out::<f16, bf16>(), DType::F32);
    assert_eq!(out::<f16, f32>(), DType::F32);
    assert_eq!(out::<i32, f16>(), DType::F16);
    assert_eq!(out::<i8, i32>(), DType::I32);
    assert_eq!(out::<u32, i32>(), DType::U32);
    assert_eq!(out::<u8, i32>(), DType::I32);
    assert_eq!(out::<u32, i64>(), DType::I64);
    assert_eq!(out::<i32, dsl_core::lang::FloatLit>(), DType::F32);
    assert_eq!(out::<bf16, dsl_core::lang::FloatLit>(), DType::BF16);
    assert_eq!(out::<u8, dsl_core::lang::IntLit>(), DType::U8);
}

// ---------------------------------------------------------------- grid dependency control

#[kernel]
fn waits_right(x: Ptr<f32>, w: Ptr<f32>, out: MutPtr<f32>) {
    let offs = arange(0, 16);
    gdc_launch_dependents();
    prefetch_l2(w + offs, offs < 16);
    gdc_wait();
    store(out + offs, load(x + offs) + load(w + offs));
}

#[kernel]
fn writes_then_waits(x: Ptr<f32>, out: MutPtr<f32>) {
    let offs = arange(0, 16);
    store(out + offs, load(x + offs)); // MARK-EARLY-STORE
    gdc_wait(); // MARK-LATE-WAIT
}

#[kernel]
fn waits_in_a_loop(out: MutPtr<f32>, n: i32) {
    for _i in 0..n {
        gdc_wait(); // MARK-LOOP-WAIT
    }
    store(out, 1.0);
}

#[kernel]
fn waits_twice(out: MutPtr<f32>) {
    gdc_wait();
    gdc_wait(); // MARK-SECOND-WAIT
    store(out, 1.0);
}

#[kernel]
fn atomic_in_a_branch_then_waits(out: MutPtr<f32>, n: i32) {
    if n > 0 {
        atomic_add(out, 1.0, true); // MARK-BRANCH-ATOMIC
    }
    gdc_wait();
}

#[test]
fn gdc_wait_must_come_once_at_top_level_before_any_write() {
    let k = waits_right::build().expect("a well-placed gdc_wait");
    let text = dsl_core::ir::print::print(&k, false);
    assert!(text.contains("gdc_launch_dependents") && text.contains("prefetch_l2") && text.contains("gdc_wait"), "{text}");

    let e = compile_err(writes_then_waits::build());
    assert_eq!(e.loc.line, line_of("MARK-LATE-WAIT"));
    assert!(e.message.contains("gdc_wait after a write to memory") && e.message.contains(&format!(":{}:", line_of("MARK-EARLY-STORE"))), "{}", e.message);
    assert!(!e.message.contains("internal error"), "{}", e.message);

    let e = compile_err(waits_in_a_loop::build());
    assert_eq!(e.loc.line, line_of("MARK-LOOP-WAIT"));
    assert!(e.message.contains("top level"), "{}", e.message);

    let e = compile_err(waits_twice::build());
    assert_eq!(e.loc.line, line_of("MARK-SECOND-WAIT"));
    assert!(e.message.contains("twice"), "{}", e.message);

    let e = compile_err(atomic_in_a_branch_then_waits::build());
    assert!(e.message.contains("gdc_wait after a write to memory"), "{}", e.message);
    assert!(e.message.contains(&format!(":{}:", line_of("MARK-BRANCH-ATOMIC"))), "{}", e.message);
}
