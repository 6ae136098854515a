//! `dot` on tensor cores: `mma.sync.aligned.m16n8k16` for f16 and bf16 operands with f32 accumulation.
//!
//! First step (issue 4): operands are staged row-major in shared memory and each warp loads its
//! fragments with plain shared loads; the warp's 16x8 result tiles go back through shared memory into the
//! accumulator's blocked layout. `ldmatrix`, swizzling, `cp.async` pipelining and tensor-core register
//! layouts that skip the round trip come next.
//!
//! Fragments (PTX ISA, m16n8k16 .f16/.bf16), lane = 4 * group + tig:
//! A (16x16, row-major): a0 (row group, cols 2tig..+1), a1 (row group+8), a2/a3 the same at cols +8;
//! B (16x8, "col"): b0 (rows 2tig..+1 of column group), b1 (rows +8); C/D: c0,c1 (row group, cols 2tig..+1),
//! c2,c3 (row group+8). The lower-indexed element of a pair sits in the low 16 bits.

use super::{dtype_lty, Lowerer};
use crate::compile::CodegenError;
use dsl_core::ir::ValueId;
use dsl_core::types::DType;

impl Lowerer<'_> {
    /// True where `dot` of `[m, k] x [k, n]` with these operand types runs on `mma.sync` m16n8k16.
    pub(super) fn mma_fits(da: DType, db: DType, m: usize, k: usize, n: usize) -> bool {
        da == db && matches!(da, DType::F16 | DType::BF16) && m % 16 == 0 && n % 8 == 0 && k % 16 == 0
    }

    pub(super) fn dot_mma(&mut self, a: ValueId, b: ValueId, acc: ValueId) -> Result<Vec<String>, CodegenError> {
        let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
        let (m, k, n) = (sa[0], sa[1], sb[1]);
        let d = self.dtype(a);
        let et = dtype_lty(d);
        let (la, lb, lc) = (self.layout(a)?, self.layout(b)?, self.layout(acc)?);
        let b_base = m * k * 2;
        let d_base = (b_base + k * n * 2).next_multiple_of(16);
        self.need_smem(d_base + m * n * 4);
        self.barrier();
        let (ra, rb) = (self.regs(a), self.regs(b));
        self.smem_write(&ra, la, et, 2, 0);
        self.smem_write(&rb, lb, et, 2, b_base);
        self.barrier();

        let tid = self.tid();
        let lane = self.f.inst(format!("and i32 {tid}, 31"));
        let warp = self.f.inst(format!("lshr i32 {tid}, 5"));
        let group = self.f.inst(format!("lshr i32 {lane}, 2"));
        let tig = self.f.inst(format!("and i32 {lane}, 3"));
        let warps = self.threads / 32;
        let tiles = (m / 16) * (n / 8);
        let per_warp = tiles.div_ceil(warps);
        // Tile j of this warp is warp + j * warps (clamped: extra warps redo the last tile, not stored).
        struct Tile {
            valid: String,
            row: String,
            col: String,
        }
        let mut my_tiles = vec![];
        for j in 0..per_warp {
            let t = self.f.inst(format!("add i32 {warp}, {}", j * warps));
            let valid = self.f.inst(format!("icmp ult i32 {t}, {tiles}"));
            let tc = self.f.inst(format!("select i1 {valid}, i32 {t}, i32 {}", tiles - 1));
            let mt = self.f.inst(format!("udiv i32 {tc}, {}", n / 8));
            let nt = self.f.inst(format!("urem i32 {tc}, {}", n / 8));
            let r0 = self.f.inst(format!("mul i32 {mt}, 16"));
            let row = self.f.inst(format!("add i32 {r0}, {group}"));
            let c0 = self.f.inst(format!("mul i32 {nt}, 8"));
            my_tiles.push(Tile { valid, row, col: c0 });
        }
        let tig2 = self.f.inst(format!("shl i32 {tig}, 1"));
        let init = vec![("0.0".to_string(), "0".to_string()); 4 * per_warp];
        self.loop_ty = "float".into();
        let suffix = if d == DType::F16 { "f16.f16" } else { "bf16.bf16" };
        let accs = self.counted_loop(k / 16, init, |s, kt, accs| {
            let k0 = s.f.inst(format!("mul i32 {kt}, 16"));
            let kk = s.f.inst(format!("add i32 {k0}, {tig2}"));
            let mut next = vec![];
            for (j, t) in my_tiles.iter().enumerate() {
                // A: two rows (group, group + 8) x two column pairs (kk, kk + 8), each pair one 32-bit load.
                let mut af = vec![];
                for (dr, dc) in [(0, 0), (8, 0), (0, 8), (8, 8)] {
                    let r = s.f.inst(format!("add i32 {}, {dr}", t.row));
                    let rk = s.f.inst(format!("mul i32 {r}, {k}"));
                    let c = s.f.inst(format!("add i32 {kk}, {dc}"));
                    let e = s.f.inst(format!("add i32 {rk}, {c}"));
                    let addr = s.smem_addr(0, &e, 2);
                    af.push(s.f.inst(format!("load i32, ptr addrspace(3) {addr}, align 4")));
                }
                // B: rows (kk, kk + 1) and (kk + 8, kk + 9) of column col + group, packed low/high.
                let col = s.f.inst(format!("add i32 {}, {group}", t.col));
                let mut bf = vec![];
                for dk in [0, 8] {
                    let mut halves = vec![];
                    for h in 0..2 {
                        let kr = s.f.inst(format!("add i32 {kk}, {}", dk + h));
                        let kn = s.f.inst(format!("mul i32 {kr}, {n}"));
                        let e = s.f.inst(format!("add i32 {kn}, {col}"));
                        let addr = s.smem_addr(b_base, &e, 2);
                        let x = s.f.inst(format!("load i16, ptr addrspace(3) {addr}, align 2"));
                        halves.push(s.f.inst(format!("zext i16 {x} to i32")));
                    }
                    let hi = s.f.inst(format!("shl i32 {}, 16", halves[1]));
                    bf.push(s.f.inst(format!("or i32 {hi}, {}", halves[0])));
                }
                let c: Vec<&String> = accs[4 * j..4 * j + 4].iter().map(|(v, _)| v).collect();
                let ret = "{ float, float, float, float }";
                let res = s.f.inst(format!(
                    "call {ret} asm sideeffect \"mma.sync.aligned.m16n8k16.row.col.f32.{suffix}.f32 {{$0,$1,$2,$3}}, {{$4,$5,$6,$7}}, {{$8,$9}}, {{$10,$11,$12,$13}};\", \"=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f\"(i32 {}, i32 {}, i32 {}, i32 {}, i32 {}, i32 {}, float {}, float {}, float {}, float {}) #1",
                    af[0], af[1], af[2], af[3], bf[0], bf[1], c[0], c[1], c[2], c[3]
                ));
                for i in 0..4 {
                    next.push((s.f.inst(format!("extractvalue {ret} {res}, {i}")), String::new()));
                }
            }
            next
        });
        // Each warp's valid tiles go to shared memory as f32 [m, n] (a region of their own: no barrier).
        for (j, t) in my_tiles.iter().enumerate() {
            let go = self.f.block("mma_store");
            let after = self.f.block("mma_stored");
            self.f.emit(format!("br i1 {}, label {}, label {}", t.valid, self.f.label(go), self.f.label(after)));
            self.f.switch_to(go);
            for (i, (dr, dc)) in [(0, 0), (0, 1), (8, 0), (8, 1)].into_iter().enumerate() {
                let r = self.f.inst(format!("add i32 {}, {dr}", t.row));
                let rn = self.f.inst(format!("mul i32 {r}, {n}"));
                let c = self.f.inst(format!("add i32 {}, {tig2}", t.col));
                let c = self.f.inst(format!("add i32 {c}, {dc}"));
                let e = self.f.inst(format!("add i32 {rn}, {c}"));
                let addr = self.smem_addr(d_base, &e, 4);
                self.f.emit(format!("store float {}, ptr addrspace(3) {addr}", accs[4 * j + i].0));
            }
            self.f.emit(format!("br label {}", self.f.label(after)));
            self.f.switch_to(after);
        }
        self.barrier();
        let acc_regs = self.regs(acc);
        Ok((0..lc.regs())
            .map(|r| {
                let o = self.elem_index(lc, r);
                let x = self.smem_read(d_base, &o, "float", 4);
                self.f.inst(format!("fadd float {}, {x}", acc_regs[r]))
            })
            .collect())
    }
}
