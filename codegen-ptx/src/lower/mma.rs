//! `dot` on tensor cores: `mma.sync.aligned.m16n8k16` for f16 and bf16 operands with f32 accumulation.
//!
//! Where the accumulator tile splits evenly over the warps ([`MmaLayout::choose`]), the result lives in
//! the mma accumulator layout: [`plan`] decides, before lowering, which values do (`dot` results,
//! elementwise ops on them, loop-carried accumulators), so that a GEMM's accumulator stays in registers
//! across its k loop; other uses convert it to the blocked layout through shared memory
//! ([`Lowerer::regs_in`]). Operands are staged in shared memory, XOR-swizzled by 16-byte chunk
//! ([`crate::layout::swizzle`]), and read with `ldmatrix` (`.trans` for `B`, which is `[k, n]`).
//!
//! Otherwise (small tiles) the older path below stages operands row-major, reads fragments with plain
//! shared loads and returns the result in the blocked layout.
//!
//! Fragments (PTX ISA, m16n8k16 .f16/.bf16), lane = 4 * group + tig:
//! A (16x16, row-major): a0 (row group, cols 2tig..+1), a1 (row group+8), a2/a3 the same at cols +8;
//! B (16x8, "col"): b0 (rows 2tig..+1 of column group), b1 (rows +8); C/D: c0,c1 (row group, cols 2tig..+1),
//! c2,c3 (row group+8). The lower-indexed element of a pair sits in the low 16 bits.

use super::place::Place;
use super::{dtype_lty, Lowerer};
use crate::error::CodegenError;
use crate::layout::{Layout, MmaLayout};
use crate::target::Target;
use dsl_core::ir::{Op, OpKind, ValueId};
use dsl_core::types::{DType, ElemTy};

impl Lowerer<'_> {
    /// True where `dot` of `[m, k] x [k, n]` with these operand types runs on `mma.sync` m16n8k16.
    /// True where `dot` of `[m, k] x [k, n]` with these operand types runs on `mma.sync`: f16 x f16 and
    /// bf16 x bf16 (m16n8k16), and fp8 of either kind (m16n8k32, sm_89 and later).
    pub(super) fn mma_fits(target: Target, da: DType, db: DType, m: usize, k: usize, n: usize) -> bool {
        let fp8 = |d: DType| matches!(d, DType::F8E4M3 | DType::F8E5M2);
        let tiles = m % 16 == 0 && n % 8 == 0;
        if fp8(da) && fp8(db) {
            return target.has_fp8_mma() && tiles && k % 32 == 0;
        }
        da == db && matches!(da, DType::F16 | DType::BF16) && tiles && k % 16 == 0
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
            self.only_where(&t.valid, "mma_store", |s| {
                for (i, (dr, dc)) in [(0, 0), (0, 1), (8, 0), (8, 1)].into_iter().enumerate() {
                    let r = s.f.inst(format!("add i32 {}, {dr}", t.row));
                    let rn = s.f.inst(format!("mul i32 {r}, {n}"));
                    let c = s.f.inst(format!("add i32 {}, {tig2}", t.col));
                    let c = s.f.inst(format!("add i32 {c}, {dc}"));
                    let e = s.f.inst(format!("add i32 {rn}, {c}"));
                    let addr = s.smem_addr(d_base, &e, 4);
                    s.f.emit(format!("store float {}, ptr addrspace(3) {addr}", accs[4 * j + i].0));
                }
            });
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

/// The NVVM intrinsic of `mma.sync` with f32 accumulation for operand types `a`, `b` (m16n8k16 for
/// f16/bf16, m16n8k32 for fp8), and the LLVM type of its A/B operand registers.
fn mma_intrinsic(a: DType, b: DType) -> (String, &'static str) {
    let fp8 = |d: DType| if d == DType::F8E4M3 { "e4m3" } else { "e5m2" };
    match a {
        DType::F16 => ("llvm.nvvm.mma.m16n8k16.row.col.f32.f32".into(), "<2 x half>"),
        DType::BF16 => ("llvm.nvvm.mma.m16n8k16.row.col.bf16".into(), "i32"),
        _ => (format!("llvm.nvvm.mma.m16n8k32.row.col.f32.{}.{}.f32", fp8(a), fp8(b)), "i32"),
    }
}

impl Lowerer<'_> {
    /// `v`'s registers in place `want` (`None`: blocked). Splats and scalars are free, and so are a
    /// row vector's broadcast read by an mma tile with its rows and a rematerializable tile read in an
    /// mma or row layout; anything else goes through shared memory.
    pub(super) fn regs_in(&mut self, v: ValueId, want: Option<Place>) -> Vec<String> {
        let have = self.place_of(v);
        let regs = self.val(v).regs().to_vec();
        if have == want {
            return regs;
        }
        let bl = self.layout(v).expect("an mma tile (128 * warps * k elements) fits the blocked layout");
        let count = want.map_or(bl.regs(), |p| p.regs());
        if self.plan.splat[v.0 as usize] || self.ty(v).numel() <= 1 {
            return vec![regs[0].clone(); count];
        }
        if let (Some(Place::RowsBcast(rl)), Some(Place::Mma(l))) = (have, want) {
            if l.rows() == Some(rl) {
                return (0..l.regs()).map(|r| regs[l.row_reg(r)].clone()).collect();
            }
        }
        if let (None, Some(p)) = (have, want) {
            if self.can_remat(v) {
                let (origin, rank) = (self.place_origin(p), self.ty(v).shape.len());
                return (0..count)
                    .map(|r| {
                        let c = self.place_coords(p, &origin, r, rank);
                        self.remat_coords(v, &c)
                    })
                    .collect();
            }
        }
        let elem = self.ty(v).elem.clone();
        let (t, size) = self.smem_type(&elem);
        let is_bool = elem == ElemTy::Scalar(DType::Bool);
        let regs: Vec<String> =
            if is_bool { regs.iter().map(|x| self.f.inst(format!("zext i1 {x} to i8"))).collect() } else { regs };
        // Row vectors (and their broadcasts) go through shared memory as their `m` rows.
        let row_len = match have {
            Some(Place::Rows(_) | Place::RowsBcast(_)) => self.ty(v).shape.get(1).copied().unwrap_or(1),
            _ => 1,
        };
        self.need_smem(bl.numel * size);
        self.barrier();
        match have {
            None => self.smem_write(&regs, bl, t, size, 0),
            Some(Place::Mma(l)) => {
                let base = self.mma_base(l);
                for (r, x) in regs.iter().enumerate() {
                    let e = self.f.inst(format!("add i32 {base}, {}", l.offset(r)));
                    let a = self.smem_addr(0, &e, size);
                    self.f.emit(format!("store {t} {x}, ptr addrspace(3) {a}"));
                }
            }
            Some(Place::Rows(rl) | Place::RowsBcast(rl)) => {
                let row0 = self.rows_base(rl);
                let lane = self.lane();
                let q = self.f.inst(format!("and i32 {lane}, 3"));
                let owner = self.f.inst(format!("icmp eq i32 {q}, 0"));
                self.only_where(&owner, "rows_write", |s| {
                    for (r, x) in regs.iter().enumerate() {
                        let e = s.f.inst(format!("add i32 {row0}, {}", rl.offset(r)));
                        let a = s.smem_addr(0, &e, size);
                        s.f.emit(format!("store {t} {x}, ptr addrspace(3) {a}"));
                    }
                });
            }
        }
        self.barrier();
        let origin = want.map(|p| self.place_origin(p));
        (0..count)
            .map(|r| {
                let e = match (want, &origin) {
                    (Some(p @ Place::Mma(_)), Some(o)) => {
                        let c = self.place_coords(p, o, r, 2);
                        let n = self.ty(v).shape.get(1).copied().unwrap_or(1);
                        let rn = self.f.inst(format!("mul i32 {}, {n}", c[0]));
                        self.f.inst(format!("add i32 {rn}, {}", c[1]))
                    }
                    // A row vector's flat index is its row.
                    (Some(p), Some(o)) => self.place_coords(p, o, r, 1).remove(0),
                    _ => self.elem_index(bl, r),
                };
                let e = if row_len > 1 { self.f.inst(format!("udiv i32 {e}, {row_len}")) } else { e };
                let x = self.smem_read(0, &e, t, size);
                if is_bool { self.f.inst(format!("icmp ne i8 {x}, 0")) } else { x }
            })
            .collect()
    }

    /// The coordinates (row, column) of register 0 of place `p` in this thread (a row vector's column
    /// is 0): computed once per conversion, [`Self::place_coords`] adds each register's offset.
    pub(super) fn place_origin(&mut self, p: Place) -> (String, String) {
        match p {
            Place::Mma(l) => self.mma_row_col(l),
            Place::Rows(rl) | Place::RowsBcast(rl) => (self.rows_base(rl), "0".into()),
        }
    }

    /// The coordinates (row, column; i32 operands) of register `r` of place `p` in this thread, from
    /// `origin` ([`Self::place_origin`]), for a tile of rank `rank` (a row vector of rank 1 has only its
    /// row).
    pub(super) fn place_coords(&mut self, p: Place, origin: &(String, String), r: usize, rank: usize) -> Vec<String> {
        let (row0, col0) = origin;
        match p {
            Place::Mma(l) => {
                let (tile, c) = (r / 4, r % 4);
                let (i, j) = (tile / l.tn(), tile % l.tn());
                let row = self.f.inst(format!("add i32 {row0}, {}", i * 16 + 8 * (c / 2)));
                let col = self.f.inst(format!("add i32 {col0}, {}", j * 8 + c % 2));
                vec![row, col]
            }
            Place::Rows(rl) | Place::RowsBcast(rl) => {
                let row = self.f.inst(format!("add i32 {row0}, {}", rl.offset(r)));
                if rank >= 2 { vec![row, "0".into()] } else { vec![row] }
            }
        }
    }

    /// This thread's lane (`tid % 32`).
    pub(super) fn lane(&mut self) -> String {
        let tid = self.tid();
        self.f.inst(format!("and i32 {tid}, 31"))
    }

    /// The row of register 0 of row layout `rl` in this thread.
    fn rows_base(&mut self, rl: crate::layout::RowLayout) -> String {
        let tid = self.tid();
        let warp = self.f.inst(format!("lshr i32 {tid}, 5"));
        let lane = self.lane();
        let g = self.f.inst(format!("lshr i32 {lane}, 2"));
        let r0 = self.f.inst(format!("mul i32 {warp}, {}", rl.m / rl.wm));
        self.f.inst(format!("add i32 {r0}, {g}"))
    }

    /// The (row, column) of register 0 of mma layout `l` in this thread.
    fn mma_row_col(&mut self, l: MmaLayout) -> (String, String) {
        let tid = self.tid();
        let warp = self.f.inst(format!("lshr i32 {tid}, 5"));
        let lane = self.f.inst(format!("and i32 {tid}, 31"));
        let g = self.f.inst(format!("lshr i32 {lane}, 2"));
        let q = self.f.inst(format!("and i32 {lane}, 3"));
        let wr = self.f.inst(format!("udiv i32 {warp}, {}", l.wn));
        let wc = self.f.inst(format!("urem i32 {warp}, {}", l.wn));
        let row0 = self.f.inst(format!("mul i32 {wr}, {}", l.m / l.wm));
        let row = self.f.inst(format!("add i32 {row0}, {g}"));
        let col0 = self.f.inst(format!("mul i32 {wc}, {}", l.n / l.wn));
        let q2 = self.f.inst(format!("shl i32 {q}, 1"));
        let col = self.f.inst(format!("add i32 {col0}, {q2}"));
        (row, col)
    }

    /// The flat (row-major) element index of register 0 of layout `l` in this thread; register `r` is at
    /// `base + l.offset(r)`.
    fn mma_base(&mut self, l: MmaLayout) -> String {
        let (row, col) = self.mma_row_col(l);
        let rn = self.f.inst(format!("mul i32 {row}, {}", l.n));
        self.f.inst(format!("add i32 {rn}, {col}"))
    }

    /// The swizzle key ([`crate::layout::swizzle`]) of shared-memory row `row` (an i32 operand) with `chunks` 16-byte
    /// chunks per row.
    pub(super) fn swizzle_key(&mut self, row: &str, chunks: usize) -> String {
        if !chunks.is_power_of_two() || chunks == 1 {
            return "0".into();
        }
        let lanes = chunks.min(8);
        let per = 8 / lanes;
        let r = self.f.inst(format!("lshr i32 {row}, {}", per.trailing_zeros()));
        self.f.inst(format!("and i32 {r}, {}", lanes - 1))
    }

    /// Byte offset (i32) of flat element `e` in a swizzled tile with rows of `row_len` elements of `es`
    /// bytes.
    pub(super) fn swizzled_offset(&mut self, e: &str, row_len: usize, es: usize) -> String {
        let row = self.f.inst(format!("udiv i32 {e}, {row_len}"));
        let col = self.f.inst(format!("urem i32 {e}, {row_len}"));
        let col = self.f.inst(format!("mul i32 {col}, {es}"));
        let ch = self.f.inst(format!("lshr i32 {col}, 4"));
        let within = self.f.inst(format!("and i32 {col}, 15"));
        let key = self.swizzle_key(&row, row_len * es / 16);
        let phys = self.f.inst(format!("xor i32 {ch}, {key}"));
        let rb = self.f.inst(format!("mul i32 {row}, {}", row_len * es));
        let pb = self.f.inst(format!("shl i32 {phys}, 4"));
        let wb = within;
        let off = self.f.inst(format!("add i32 {rb}, {pb}"));
        self.f.inst(format!("add i32 {off}, {wb}"))
    }

    /// Writes a blocked tile (elements of `es` bytes) with rows of `row_len` elements to shared memory at byte `base`
    /// (absolute), each 16-byte chunk at its swizzled place ([`crate::layout::swizzle`]); `vec`-element
    /// runs are stored as one vector.
    pub(super) fn smem_write_swizzled(&mut self, regs: &[String], l: Layout, t: &str, row_len: usize, es: usize, base: usize) {
        self.smem_write_operand(regs, l, t, row_len, es, base, None);
    }

    /// [`Self::smem_write_swizzled`], or with `wg_rows` (the tile's rows) in the layout of a `wgmma`
    /// operand ([`Self::operand_offset`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn smem_write_operand(&mut self, regs: &[String], l: Layout, t: &str, row_len: usize, es: usize, base: usize, wg_rows: Option<usize>) {
        let owner = self.owner(l);
        self.only_where(&owner, "swz_write", |s| {
            // Runs never cross a 16-byte chunk (the swizzle moves whole chunks).
            let run_len = l.vec.min(16 / es).max(1);
            for (c, run) in regs.chunks(run_len).enumerate() {
                let e = s.elem_index(l, c * run_len);
                let off = s.operand_offset(&e, row_len, es, wg_rows);
                let off = s.f.inst(format!("add i32 {off}, {base}"));
                let addr = s.f.inst(format!("getelementptr i8, ptr addrspace(3) @__smem, i32 {off}"));
                if run.len() == 1 {
                    s.f.emit(format!("store {t} {}, ptr addrspace(3) {addr}, align {es}", run[0]));
                } else {
                    let vt = format!("<{} x {t}>", run.len());
                    let mut v = "poison".to_string();
                    for (i, x) in run.iter().enumerate() {
                        v = s.f.inst(format!("insertelement {vt} {v}, {t} {x}, i32 {i}"));
                    }
                    s.f.emit(format!("store {vt} {v}, ptr addrspace(3) {addr}, align {}", es * run.len()));
                }
            }
        });
    }

    /// `ldmatrix` of `count` (2 or 4) 8x8 16-bit matrices at (absolute) shared byte offset `off`; `trans`
    /// transposes.
    fn ldmatrix(&mut self, off: &str, count: usize, trans: bool) -> Vec<String> {
        let name = format!("llvm.nvvm.ldmatrix.sync.aligned.m8n8.x{count}{}.b16", if trans { ".trans" } else { "" });
        let ret = format!("{{ {} }}", vec!["i32"; count].join(", "));
        self.declare(format!("declare {ret} @{name}(ptr addrspace(3))"));
        let addr = self.f.inst(format!("getelementptr i8, ptr addrspace(3) @__smem, i32 {off}"));
        let res = self.f.inst(format!("call {ret} @{name}(ptr addrspace(3) {addr})"));
        (0..count).map(|i| self.f.inst(format!("extractvalue {ret} {res}, {i}"))).collect()
    }

    /// `acc + a · b` with the result in the mma layout `l`: operands in swizzled shared memory (pipelined
    /// by `cp.async`, or staged here from registers), fragments read with `ldmatrix`, one `mma.sync` per
    /// 16x8 tile and 32-byte step of `k` (m16n8k16 for 16-bit operands, m16n8k32 for fp8).
    ///
    /// A sits as `[m][k]`. B sits as `[n][k]` (*k-major*) when it is a transposed tile (the transpose is
    /// not lowered: its source is staged as it is) or fp8 (transposed while staging, since `ldmatrix`
    /// transposes only 16-bit elements); otherwise as `[k][n]`, read with `ldmatrix.trans`.
    pub(super) fn dot_tc(&mut self, a: ValueId, b: ValueId, acc: ValueId, l: MmaLayout) -> Result<Vec<String>, CodegenError> {
        let (m, k, n) = (self.ty(a).shape[0], self.ty(a).shape[1], self.ty(b).shape[1]);
        let (da, db) = (self.dtype(a), self.dtype(b));
        let es = da.size_bytes();
        let mut accs = self.regs_in(acc, Some(Place::Mma(l)));
        let b_t = self.kmajor.get(&b).copied();
        let k_major = b_t.is_some() || es == 1;
        let a_bytes = (m * k * es).next_multiple_of(128);
        let pa = match self.resident.get(&a) {
            Some(at) => Some(at.to_string()),
            None => self.pipelined_operand(a),
        };
        let pb = self.pipelined_operand(b_t.unwrap_or(b));
        self.pipe_prefetch()?;
        let a_regs = self.register_a(a, l).map(|la| (la, self.val(a).regs().to_vec()));
        let stage_a = pa.is_none() && a_regs.is_none();
        if stage_a || pb.is_none() {
            self.need_smem(a_bytes + k * n * es);
            self.barrier();
            let base = self.smem_base;
            if stage_a {
                let (la, ra) = (self.layout(a)?, self.regs(a));
                self.smem_write_swizzled(&ra, la, dtype_lty(da), k, es, base);
            }
            if pb.is_none() {
                match b_t {
                    Some(x) => {
                        let (lx, rx) = (self.layout(x)?, self.regs(x));
                        self.smem_write_swizzled(&rx, lx, dtype_lty(db), k, es, base + a_bytes);
                    }
                    None if k_major => {
                        let (lb, rb) = (self.layout(b)?, self.regs(b));
                        self.smem_write_transposed(&rb, lb, k, n, base + a_bytes, None);
                    }
                    None => {
                        let (lb, rb) = (self.layout(b)?, self.regs(b));
                        self.smem_write_swizzled(&rb, lb, dtype_lty(db), n, es, base + a_bytes);
                    }
                }
            }
            self.barrier();
        }
        let a_base = pa.unwrap_or_else(|| self.smem_base.to_string());
        let b_base = pb.unwrap_or_else(|| (self.smem_base + a_bytes).to_string());

        // Lane roles in `ldmatrix`: lanes 8j..8j+7 give the 8 row addresses of matrix j. The swizzle key
        // of a row depends on `row % 8` only, and every fragment block starts at a multiple of 8 rows.
        let tid = self.tid();
        let lane = self.f.inst(format!("and i32 {tid}, 31"));
        let warp = self.f.inst(format!("lshr i32 {tid}, 5"));
        let l16 = self.f.inst(format!("and i32 {lane}, 15"));
        let l8 = self.f.inst(format!("and i32 {lane}, 7"));
        let hi = self.f.inst(format!("lshr i32 {lane}, 4"));
        let mid = self.f.inst(format!("lshr i32 {lane}, 3"));
        let mid = self.f.inst(format!("and i32 {mid}, 1"));
        let wr = self.f.inst(format!("udiv i32 {warp}, {}", l.wn));
        let wc = self.f.inst(format!("urem i32 {warp}, {}", l.wn));
        let (a_row_bytes, kchunks) = (k * es, k * es / 16);
        // A (x4): row `l % 16` of the 16-row tile, chunk `l / 16` of the 32-byte k step: a0..a3.
        let key_a = self.swizzle_key(&l8, kchunks);
        let lck_a = self.f.inst(format!("xor i32 {hi}, {key_a}"));
        let arow = self.f.inst(format!("mul i32 {wr}, {}", l.m / l.wm));
        let arow = self.f.inst(format!("add i32 {arow}, {l16}"));
        let arow = self.f.inst(format!("mul i32 {arow}, {a_row_bytes}"));
        let arow = self.f.inst(format!("add i32 {arow}, {a_base}"));
        let (tm, tn) = (l.tm(), l.tn());
        let bcol0 = self.f.inst(format!("mul i32 {wc}, {}", n / l.wn));
        // B, k-major (x4 over two n-tiles): row (n) `8 * (l / 16) + l % 8`, chunk `(l / 8) % 2`: b0, b1 of
        // tile j, then of tile j + 1. x2 (one tile): row `l % 8`.
        // B, n-major (x4.trans over two n-tiles): row (k) `l % 16`, chunk (n) `l / 16`.
        let (key_b, lck_b, brow_pair, brow_one) = if k_major {
            let key = self.swizzle_key(&l8, kchunks);
            let lck = self.f.inst(format!("xor i32 {mid}, {key}"));
            let r = self.f.inst(format!("add i32 {bcol0}, {l8}"));
            let one = self.f.inst(format!("mul i32 {r}, {a_row_bytes}"));
            let one = self.f.inst(format!("add i32 {one}, {b_base}"));
            let h8 = self.f.inst(format!("shl i32 {hi}, 3"));
            let r2 = self.f.inst(format!("add i32 {r}, {h8}"));
            let pair = self.f.inst(format!("mul i32 {r2}, {a_row_bytes}"));
            let pair = self.f.inst(format!("add i32 {pair}, {b_base}"));
            (key, lck, pair, one)
        } else {
            let key = self.swizzle_key(&l8, n * es / 16);
            let lck = self.f.inst(format!("xor i32 {hi}, {key}"));
            let r = self.f.inst(format!("mul i32 {l16}, {}", n * es));
            let r = self.f.inst(format!("add i32 {r}, {b_base}"));
            (key, lck, r.clone(), r)
        };
        let (intr, opty) = mma_intrinsic(da, db);
        let ret = "{ float, float, float, float }";
        self.declare(format!(
            "declare {ret} @{intr}({opty}, {opty}, {opty}, {opty}, {opty}, {opty}, float, float, float, float)"
        ));
        for kt in 0..k * es / 32 {
            let mut af = vec![];
            for i in 0..tm {
                if let Some(ra) = &a_regs {
                    af.push(self.a_fragment(ra, dtype_lty(da), i, kt));
                    continue;
                }
                let ch = self.f.inst(format!("xor i32 {lck_a}, {}", kt * 2));
                let cbytes = self.f.inst(format!("shl i32 {ch}, 4"));
                let off = self.f.inst(format!("add i32 {arow}, {}", i * 16 * a_row_bytes));
                let off = self.f.inst(format!("add i32 {off}, {cbytes}"));
                af.push(self.ldmatrix(&off, 4, false));
            }
            let mut bf: Vec<[String; 2]> = vec![];
            let mut j = 0;
            while j < tn {
                // Pairs start at even tiles (tn even), so adding `l / 16` (n-major) is an xor.
                let pair = tn % 2 == 0 && j + 1 < tn;
                let x = if k_major {
                    let ch = self.f.inst(format!("xor i32 {lck_b}, {}", kt * 2));
                    let cbytes = self.f.inst(format!("shl i32 {ch}, 4"));
                    let row = if pair { &brow_pair } else { &brow_one };
                    let off = self.f.inst(format!("add i32 {row}, {}", j * 8 * a_row_bytes));
                    let off = self.f.inst(format!("add i32 {off}, {cbytes}"));
                    self.ldmatrix(&off, if pair { 4 } else { 2 }, false)
                } else {
                    let c = self.f.inst(format!("udiv i32 {bcol0}, 8"));
                    let c = self.f.inst(format!("add i32 {c}, {j}"));
                    let ch = self.f.inst(format!("xor i32 {c}, {}", if pair { &lck_b } else { &key_b }));
                    let cbytes = self.f.inst(format!("shl i32 {ch}, 4"));
                    let off = self.f.inst(format!("add i32 {brow_pair}, {}", kt * 16 * n * es));
                    let off = self.f.inst(format!("add i32 {off}, {cbytes}"));
                    self.ldmatrix(&off, if pair { 4 } else { 2 }, true)
                };
                bf.push([x[0].clone(), x[1].clone()]);
                if pair {
                    bf.push([x[2].clone(), x[3].clone()]);
                }
                j += if pair { 2 } else { 1 };
            }
            let cast = |s: &mut Self, x: &str| {
                if opty == "i32" { x.to_string() } else { s.f.inst(format!("bitcast i32 {x} to {opty}")) }
            };
            let af: Vec<Vec<String>> = af.iter().map(|f| f.iter().map(|x| cast(self, x)).collect()).collect();
            let bf: Vec<Vec<String>> = bf.iter().map(|f| f.iter().map(|x| cast(self, x)).collect()).collect();
            for i in 0..tm {
                for (j, bfj) in bf.iter().enumerate() {
                    let base = (i * tn + j) * 4;
                    let fa = &af[i];
                    let c = &accs[base..base + 4];
                    let res = self.f.inst(format!(
                        "call {ret} @{intr}({opty} {}, {opty} {}, {opty} {}, {opty} {}, {opty} {}, {opty} {}, float {}, float {}, float {}, float {})",
                        fa[0], fa[1], fa[2], fa[3], bfj[0], bfj[1], c[0], c[1], c[2], c[3]
                    ));
                    for q in 0..4 {
                        accs[base + q] = self.f.inst(format!("extractvalue {ret} {res}, {q}"));
                    }
                }
            }
        }
        Ok(accs)
    }

    /// A `dot`'s A operand that can be read from registers: an mma tile of 16-bit elements whose warps
    /// hold the same rows as the result's `l` (P of attention's P·V), so that its accumulator fragments
    /// are the A fragments (FlashAttention-2's reuse); its layout.
    pub(super) fn register_a(&self, a: ValueId, l: MmaLayout) -> Option<MmaLayout> {
        let (m, k) = (self.ty(a).shape[0], self.ty(a).shape[1]);
        match self.place_of(a) {
            Some(Place::Mma(la)) if self.dtype(a).size_bytes() == 2 && l.wn == 1 && la.wn == 1 && (la.m, la.n, la.wm) == (m, k, l.wm) => {
                Some(la)
            }
            _ => None,
        }
    }

    /// The A fragment (four i32 registers of two 16-bit elements, `mma.m16n8k16`'s and `wgmma`'s
    /// register layout) of 16-row tile `i` and 16-column step `kt` of a [`Self::register_a`] operand:
    /// the accumulator pairs of its 8-column tiles `2kt` and `2kt + 1`, rows `g` and `g + 8`.
    pub(super) fn a_fragment(&mut self, (la, regs): &(MmaLayout, Vec<String>), et: &str, i: usize, kt: usize) -> Vec<String> {
        let at = |j: usize, c: usize| &regs[(i * la.tn() + j) * 4 + c];
        let (j0, j1) = (2 * kt, 2 * kt + 1);
        [(j0, 0), (j0, 2), (j1, 0), (j1, 2)]
            .map(|(j, c)| {
                let v = self.f.inst(format!("insertelement <2 x {et}> poison, {et} {}, i32 0", at(j, c)));
                let v = self.f.inst(format!("insertelement <2 x {et}> {v}, {et} {}, i32 1", at(j, c + 1)));
                self.f.inst(format!("bitcast <2 x {et}> {v} to i32"))
            })
            .to_vec()
    }

    /// Writes a blocked fp8 `[k, n]` tile to shared memory at byte `base` as `[n][k]` (swizzled rows of
    /// `k` bytes), element by element.
    /// With `wg_rows`, in the layout of a `wgmma` operand ([`Self::operand_offset`]).
    pub(super) fn smem_write_transposed(&mut self, regs: &[String], l: Layout, k: usize, n: usize, base: usize, wg_rows: Option<usize>) {
        let owner = self.owner(l);
        self.only_where(&owner, "tr_write", |s| {
            for (r, x) in regs.iter().enumerate() {
                let e = s.elem_index(l, r);
                let kk = s.f.inst(format!("udiv i32 {e}, {n}"));
                let nn = s.f.inst(format!("urem i32 {e}, {n}"));
                let t = s.f.inst(format!("mul i32 {nn}, {k}"));
                let t = s.f.inst(format!("add i32 {t}, {kk}"));
                let off = s.operand_offset(&t, k, 1, wg_rows);
                let off = s.f.inst(format!("add i32 {off}, {base}"));
                let addr = s.f.inst(format!("getelementptr i8, ptr addrspace(3) @__smem, i32 {off}"));
                s.f.emit(format!("store i8 {x}, ptr addrspace(3) {addr}, align 1"));
            }
        });
    }

    /// Fills [`Lowerer::kmajor`]: `dot(a, x.trans())` on tensor cores, where the transpose has no other use.
    pub(super) fn find_kmajor_operands(&mut self) {
        for op in self.defs.iter().flatten() {
            let OpKind::Dot { b, .. } = op.kind else { continue };
            if !matches!(self.place_of(op.results[0]), Some(Place::Mma(_))) {
                continue;
            }
            if let Some(src) = kmajor_source(&self.defs, &self.uses, b) {
                self.kmajor.insert(b, src);
            }
        }
    }
}

/// The source of a `dot`'s `b` when `b` is a transpose that only this `dot` reads: the `dot` then
/// reads the source k-major (the layout planner asks the same question).
pub(super) fn kmajor_source(defs: &[Option<&Op>], uses: &[u32], b: ValueId) -> Option<ValueId> {
    match defs[b.0 as usize].map(|o| &o.kind) {
        Some(OpKind::Permute { src, perm }) if perm == &[1, 0] && uses[b.0 as usize] == 1 => Some(*src),
        _ => None,
    }
}
