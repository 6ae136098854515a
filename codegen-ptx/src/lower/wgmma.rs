//! `dot` on Hopper's warpgroup tensor cores (sm_90a): `wgmma.mma_async`, SASS `HGMMA` (f16, bf16) and
//! `QGMMA` (e4m3, e5m2), f32 accumulation. The sm_80 path (`mma.sync`, `ldmatrix`) is [`super::mma`].
//!
//! **Which dots** ([`fits`], decided once per kernel by [`Lowerer::find_wgmma_dots`]): 16-bit operands of
//! one type or fp8 of either kind; one `m64` instruction per warpgroup, so the tile has `16 * warps`
//! rows and the accumulator is the mma layout with warps stacked along `m` ([`MmaLayout::choose_rows`],
//! one 16-row tile per warp — the wgmma accumulator fragment of warp `w` is the `mma.sync` fragment of
//! rows `16w..16w+16`, register for register). `B` k-major (`dot(a, x.trans())`, or fp8, which is
//! staged transposed), or 16-bit `[k][n]` read n-major (`tnspB`: attention's V, a plain matmul's B).
//! `A` from shared memory (pipelined, resident or staged here), or from registers: a 16-bit mma tile
//! on the result's rows (attention's P), whose accumulator fragments are wgmma's A fragments as they
//! are `mma.sync`'s. Anything else stays on `mma.sync`, in the same accumulator layout.
//!
//! **Operands in shared memory** ([`Lowerer::operand_offset`]): `[rows][k]` tiles, k-major, in the canonical
//! swizzled layouts the matrix descriptor names. Rows of 32, 64 or 128 bytes are the tiles `mma.sync`
//! uses already (16-byte chunk `c` of row `r` at `c ^ key(r)`, the hardware's 32/64/128-byte swizzle);
//! longer rows are cut into 128-byte column slabs, each a `[rows][128 B]` tile of its own, because the
//! 128-byte swizzle fixes the row pitch at 128 bytes. Buffers start at multiples of 1024 bytes (the
//! swizzle pattern repeats every 8 rows of 128 bytes and is computed from address bits).
//!
//! **Synchronization**: the operands are written by ordinary stores or `cp.async` (the generic proxy)
//! and read by `wgmma` (the async proxy): every writer fences (`fence.proxy.async.shared::cta`) before
//! the barrier that publishes them. Per `dot`: `wgmma.fence`, one instruction per 32-byte step of `k`
//! (and per 256 columns), `commit_group`, the pipeline's next copies (issued while the tensor cores
//! work), `wait_group 0` — the accumulators pass through the wait so that nothing reads them before
//! the math is done. fp8 sums are promoted: each group of up to four instructions (128 elements of k)
//! starts from zero and is added to the f32 accumulator after its wait, since Hopper's fp8 tensor
//! cores keep only about 14 bits while they accumulate.
//!
//! **Lagged dots** ([`Lowerer::lags`]): the accumulator of a pipelined loop (`acc = dot(a, b, acc)`,
//! read by nothing else) leaves its group running into the next iteration, through that iteration's
//! `cp.async` wait, barrier and copies. 16-bit: `wait_group 1` after the commit, the next group
//! chains on the same registers. fp8 (one promotion group per dot): the loop carries a hidden running
//! sum ([`Lowerer::pending`]); each iteration waits for the previous group, adds its sum to the
//! accumulator, and issues its own into the same registers (the first instruction with `scale-d` 0,
//! so nothing needs zeroing). The loop's exit waits for the last group (and adds it). Since the
//! previous iteration's stage may still be read after the barrier, the pipeline copies `S - 2`
//! iterations ahead instead of `S - 1`.

use super::place::Place;
use super::Lowerer;
use crate::error::CodegenError;
use crate::layout::MmaLayout;
use dsl_core::ir::{Block, Op, OpKind, ValueId};
use dsl_core::types::DType;

/// The most columns one `wgmma` computes (`n256`); wider tiles take one instruction per 256.
const MAX_N: usize = 256;

fn is_fp8(d: DType) -> bool {
    matches!(d, DType::F8E4M3 | DType::F8E5M2)
}

/// True where `dot` of `[m, k] x [k, n]` (operand types `da`, `db`, B k-major in shared memory when
/// `b_kmajor`) on `warps` warps runs on `wgmma` (see the module docs).
pub(super) fn fits(da: DType, db: DType, m: usize, k: usize, n: usize, warps: usize, b_kmajor: bool) -> bool {
    let sixteen = da == db && matches!(da, DType::F16 | DType::BF16);
    let fp8 = is_fp8(da) && is_fp8(db);
    // B k-major, fp8 (staged transposed), or 16-bit `[k][n]` rows read n-major (`tnspB`).
    let b_ok = b_kmajor || fp8 || (sixteen && swizzled_rows(n * db.size_bytes()));
    (sixteen || fp8) && warps % 4 == 0 && m == 16 * warps && n % 8 == 0 && swizzled_rows(k * da.size_bytes()) && b_ok
}

/// True for shared-memory rows a swizzled wgmma layout holds: 32 or 64 bytes, or 128-byte slabs.
fn swizzled_rows(bytes: usize) -> bool {
    matches!(bytes, 32 | 64) || bytes % 128 == 0
}

/// The pitch of a wgmma operand's rows in shared memory (bytes), the descriptor's stride between 8-row
/// groups, and its swizzle mode (bits 62–63: 1 = 128-byte, 2 = 64-byte, 3 = 32-byte).
fn swizzle_of(row_bytes: usize) -> (usize, usize, u64) {
    match row_bytes {
        32 => (32, 256, 3),
        64 => (64, 512, 2),
        _ => (128, 1024, 1),
    }
}

impl Lowerer<'_> {
    /// Fills [`Lowerer::wgmma_dots`] and [`Lowerer::wg_operands`] (after the k-major operands are known,
    /// before the pipelines and resident operands are planned: their buffers take the wgmma layout).
    pub(super) fn find_wgmma_dots(&mut self) {
        if !self.wgmma {
            return;
        }
        let warps = self.threads / 32;
        let mut dots = vec![];
        for op in self.defs.iter().flatten() {
            let OpKind::Dot { a, b, .. } = op.kind else { continue };
            let r = op.results[0];
            let Some(Place::Mma(l)) = self.place_of(r) else { continue };
            let (sa, sb) = (&self.ty(a).shape, &self.ty(b).shape);
            let (da, db) = (self.dtype(a), self.dtype(b));
            let b_src = self.kmajor.get(&b).copied();
            let blocked_a = self.place_of(a).is_none() && !self.plan.splat[a.0 as usize];
            let register_a = self.register_a(a, l).is_some();
            if (l.wm, l.wn, l.tm()) == (warps, 1, 1)
                && (blocked_a || register_a)
                && fits(da, db, sa[0], sa[1], sb[1], warps, b_src.is_some())
            {
                // The shared-memory operands: A unless it is in registers, B or its k-major source.
                let smem_a = (!register_a).then_some(a);
                dots.push((r, smem_a, b_src.unwrap_or(b)));
            }
        }
        // An operand's buffer (resident, pipelined or staged) has one layout for all its dots: only when
        // each of them runs here.
        let others: Vec<ValueId> = self
            .defs
            .iter()
            .flatten()
            .filter_map(|op| match op.kind {
                OpKind::Dot { a, b, .. } if !dots.iter().any(|d| d.0 == op.results[0]) => {
                    Some([a, self.kmajor.get(&b).copied().unwrap_or(b)])
                }
                _ => None,
            })
            .flatten()
            .collect();
        for (r, a, b) in dots {
            if a.is_some_and(|a| others.contains(&a)) || others.contains(&b) {
                continue;
            }
            self.wgmma_dots.insert(r);
            self.wg_operands.extend(a);
            self.wg_operands.insert(b);
        }
    }

    /// True when `op`, a `wgmma` dot in loop body `body` whose pipeline copies `copied`, leaves its group
    /// in flight into the next iteration (`wait_group 1`): both operands copied by the pipeline (nothing
    /// else writes the stage buffers it reads), 16-bit operands (fp8 sums are read at once, to promote
    /// them), at least 3 stages, and the accumulator a carried value that only this dot reads and whose
    /// next value is this dot's result, in the same layout — so nothing but the next iteration's
    /// `wgmma` touches its registers while they are written.
    pub(super) fn lags(&self, body: &Block, op: &Op, copied: &[ValueId], stages: usize) -> bool {
        let OpKind::Dot { a, b, acc } = op.kind else { return false };
        let r = op.results[0];
        // fp8: one promotion group per dot (its running sum is carried to the next iteration).
        let fp8_groups = (self.ty(a).shape[1] / 32).div_ceil(FP8_PROMOTE);
        if !self.wgmma_dots.contains(&r) || stages < 3 || (is_fp8(self.dtype(a)) && fp8_groups > 1) {
            return false;
        }
        let b_src = self.kmajor.get(&b).copied().unwrap_or(b);
        if !copied.contains(&a) || !copied.contains(&b_src) {
            return false;
        }
        let Some(slot) = body.args[1..].iter().position(|x| *x == acc) else { return false };
        super::place::yields(body).get(slot) == Some(&r)
            && self.uses[acc.0 as usize] == 1
            && self.uses[r.0 as usize] == 1
            && self.place_of(acc) == self.place_of(r)
    }

    /// True when `r` is the result of a `dot` of fp8 operands.
    pub(super) fn is_fp8_dot(&self, r: ValueId) -> bool {
        matches!(self.defs[r.0 as usize].map(|o| &o.kind), Some(OpKind::Dot { a, .. }) if is_fp8(self.dtype(*a)))
    }

    /// Byte offset (i32, relative to the tile) of flat element `e` of a shared-memory `dot` operand with
    /// rows of `row_len` elements of `es` bytes: `mma.sync`'s swizzled rows
    /// ([`Self::swizzled_offset`]), or, with `wg_rows` (the tile's rows), the layout of a `wgmma`
    /// operand (see the module docs: the same up to 128-byte rows, longer rows in 128-byte slabs).
    pub(super) fn operand_offset(&mut self, e: &str, row_len: usize, es: usize, wg_rows: Option<usize>) -> String {
        let Some(rows) = wg_rows.filter(|_| row_len * es > 128) else {
            return self.swizzled_offset(e, row_len, es);
        };
        let row = self.f.inst(format!("udiv i32 {e}, {row_len}"));
        let col = self.f.inst(format!("urem i32 {e}, {row_len}"));
        let cb = self.f.inst(format!("mul i32 {col}, {es}"));
        let slab = self.f.inst(format!("lshr i32 {cb}, 7"));
        let ch = self.f.inst(format!("lshr i32 {cb}, 4"));
        let ch = self.f.inst(format!("and i32 {ch}, 7"));
        let key = self.f.inst(format!("and i32 {row}, 7"));
        let phys = self.f.inst(format!("xor i32 {ch}, {key}"));
        let lo = self.f.inst(format!("and i32 {cb}, 15"));
        let so = self.f.inst(format!("mul i32 {slab}, {}", rows * 128));
        let ro = self.f.inst(format!("shl i32 {row}, 7"));
        let po = self.f.inst(format!("shl i32 {phys}, 4"));
        let off = self.f.inst(format!("add i32 {so}, {ro}"));
        let off = self.f.inst(format!("add i32 {off}, {po}"));
        self.f.inst(format!("add i32 {off}, {lo}"))
    }

    /// `fence.proxy.async.shared::cta`: this thread's shared-memory writes become visible to the async
    /// proxy (`wgmma`) once a barrier publishes them.
    pub(super) fn fence_proxy_async(&mut self) {
        self.f.emit("call void asm sideeffect \"fence.proxy.async.shared::cta;\", \"~{memory}\"() #1");
    }

    /// `acc + a · b` on `wgmma` (a dot of [`Lowerer::wgmma_dots`]), the result in mma layout `l`.
    pub(super) fn dot_wgmma(&mut self, result: ValueId, a: ValueId, b: ValueId, acc: ValueId, l: MmaLayout) -> Result<Vec<String>, CodegenError> {
        let (m, k, n) = (self.ty(a).shape[0], self.ty(a).shape[1], self.ty(b).shape[1]);
        let (da, db) = (self.dtype(a), self.dtype(b));
        let es = da.size_bytes();
        let row_bytes = k * es;
        let accs = self.regs_in(acc, Some(Place::Mma(l)));
        let b_t = self.kmajor.get(&b).copied();
        // 16-bit B as it sits, `[k][n]`, read n-major; fp8 `[k][n]` is staged transposed.
        let n_major = b_t.is_none() && es == 2;
        let a_regs = self.register_a(a, l).map(|la| (la, self.val(a).regs().to_vec()));
        let pa = match self.resident.get(&a) {
            Some(at) => Some(at.to_string()),
            None => self.pipelined_operand(a),
        };
        let pb = self.pipelined_operand(b_t.unwrap_or(b));
        let stage_a = pa.is_none() && a_regs.is_none();
        let a_bytes = if stage_a { (m * row_bytes).next_multiple_of(1024) } else { 0 };
        let stage_at = self.smem_base.next_multiple_of(1024);
        if stage_a || pb.is_none() {
            self.need_smem(stage_at - self.smem_base + a_bytes + n * row_bytes);
            self.barrier();
            if stage_a {
                let (la, ra) = (self.layout(a)?, self.regs(a));
                self.smem_write_operand(&ra, la, super::dtype_lty(da), k, es, stage_at, Some(m));
            }
            if pb.is_none() {
                let (src, row_len, rows) = match b_t {
                    Some(x) => (x, k, n),
                    None => (b, n, k),
                };
                let (lx, rx) = (self.layout(src)?, self.regs(src));
                if b_t.is_none() && !n_major {
                    self.smem_write_transposed(&rx, lx, k, n, stage_at + a_bytes, Some(n));
                } else {
                    self.smem_write_operand(&rx, lx, super::dtype_lty(db), row_len, es, stage_at + a_bytes, Some(rows));
                }
            }
            self.fence_proxy_async();
            self.barrier();
        }
        let b_base = pb.unwrap_or_else(|| (stage_at + a_bytes).to_string());

        let smem = self.f.inst("ptrtoint ptr addrspace(3) @__smem to i32");
        let (pitch, sbo, mode) = swizzle_of(row_bytes);
        let a = match a_regs {
            Some(ra) => AOperand::Registers(ra),
            None => {
                let a_base = pa.unwrap_or_else(|| stage_at.to_string());
                let tid = self.tid();
                let wg = self.f.inst(format!("lshr i32 {tid}, 7"));
                let a_rows = self.f.inst(format!("mul i32 {wg}, {}", 64 * pitch));
                let a0 = self.f.inst(format!("add i32 {smem}, {a_base}"));
                AOperand::Shared(self.f.inst(format!("add i32 {a0}, {a_rows}")))
            }
        };
        let b0 = self.f.inst(format!("add i32 {smem}, {b_base}"));
        // Descriptor bits other than the address: the leading byte offset (k-major: unused by the
        // swizzled layouts, 16; n-major: from one 128-byte slab of columns to the next), the stride
        // between 8-row groups, the swizzle mode.
        let fixed = |lbo: usize, sbo: usize, mode: u64| (((lbo >> 4) as u64) << 16) | (((sbo >> 4) as u64) << 32) | (mode << 62);
        let b_layout = if n_major {
            let (b_pitch, b_sbo, b_mode) = swizzle_of(n * es);
            let lbo = if n * es > 128 { k * 128 } else { 16 };
            BLayout { pitch: b_pitch, fixed: fixed(lbo, b_sbo, b_mode), n_major }
        } else {
            BLayout { pitch, fixed: fixed(16, sbo, mode), n_major }
        };
        let a_is_regs = matches!(a, AOperand::Registers(_));
        let op = Operands {
            a,
            a_lty: super::dtype_lty(da),
            b0,
            m,
            n,
            k,
            es,
            row_bytes,
            fixed: fixed(16, sbo, mode),
            b: b_layout,
            shape: if es == 1 { format!("k32.f32.{}.{}", ptx_type(da), ptx_type(db)) } else { format!("k16.f32.{}.{}", ptx_type(da), ptx_type(db)) },
            // 16-bit operands name their transposes (A from shared memory: k-major; A in registers
            // has none), fp8 none at all.
            tail: match (es, a_is_regs) {
                (1, _) => String::new(),
                (_, false) => format!(", 0, {}", n_major as u8),
                (_, true) => format!(", {}", n_major as u8),
            },
        };
        // fp8: Hopper's fp8 tensor cores keep only about 14 bits of the sum while they accumulate, so
        // each group of up to `FP8_PROMOTE` instructions sums into a fresh zero tile that is then added
        // to the f32 accumulator on the CUDA cores (the promotion cuBLAS and DeepSeek-V3 use). 16-bit
        // operands accumulate in f32 and chain straight into the accumulator.
        let steps = row_bytes / 32;
        let promote = es == 1;
        if promote && self.lagged.contains(&result) {
            return self.dot_wgmma_lagged_fp8(result, &op, steps, accs);
        }
        let group = if promote { FP8_PROMOTE } else { steps };
        // A lagged 16-bit dot leaves its group running into the next iteration (see the module docs).
        let in_flight = if self.lagged.contains(&result) { 1 } else { 0 };
        let mut total = accs;
        for g0 in (0..steps).step_by(group) {
            // fp8: each group sums from zero.
            let mut accs = if promote { vec!["0.0".to_string(); total.len()] } else { total.clone() };
            self.fence_wgmma();
            for kt in g0..steps.min(g0 + group) {
                self.wgmma_step(&op, kt, &mut accs, !promote || kt > g0);
            }
            self.commit_wgmma();
            // The pipeline's next copies are issued while the tensor cores work.
            self.pipe_prefetch()?;
            let done = self.wait_wgmma(accs, in_flight);
            self.keep_a_until_here(&op);
            total = if promote {
                self.add_sums(&total, &done)
            } else {
                done
            };
        }
        Ok(total)
    }
}

/// fp8 `wgmma` instructions (32 elements of k each) summed in the tensor cores before their sum is
/// added to the f32 accumulator: 128 elements, cuBLAS's and DeepSeek-V3's promotion interval.
const FP8_PROMOTE: usize = 4;

fn ptx_type(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F8E4M3 => "e4m3",
        _ => "e5m2",
    }
}

/// Where a `wgmma` dot's A operand is.
enum AOperand {
    /// The shared address (an i32 register) of this warpgroup's 64 rows.
    Shared(String),
    /// The mma tile whose accumulator fragments are the A fragments ([`Lowerer::register_a`]).
    Registers((MmaLayout, Vec<String>)),
}

/// How B sits in shared memory.
struct BLayout {
    /// The row pitch (bytes): of its `[n][k]` rows (k-major), or of its `[k][n]` rows (n-major).
    pitch: usize,
    /// The descriptor's bits other than the address.
    fixed: u64,
    n_major: bool,
}

/// The operands of one `wgmma` dot.
struct Operands {
    a: AOperand,
    /// A's element type in LLVM IR (`bfloat`, `half`, ...).
    a_lty: &'static str,
    /// The shared address (an i32 register) of B.
    b0: String,
    m: usize,
    n: usize,
    k: usize,
    /// Bytes per operand element.
    es: usize,
    /// The bytes of a row of A (`k` elements).
    row_bytes: usize,
    /// A's descriptor bits other than the address.
    fixed: u64,
    b: BLayout,
    /// `k16.f32.bf16.bf16`, `k32.f32.e4m3.e5m2`, ...
    shape: String,
    /// The transpose operands (16-bit types only).
    tail: String,
}

impl Operands {
    /// Where the 32-byte step `kt` of `k` starts in a k-major tile of `rows` rows (slabs of 128 bytes
    /// when the rows are longer).
    fn k_at(&self, kt: usize, rows: usize) -> usize {
        if self.row_bytes <= 128 { kt * 32 } else { (kt * 32 / 128) * rows * 128 + kt * 32 % 128 }
    }

    /// Where B's step `kt` of `k` and column `n0` start: k-major as A; n-major `[k][n]`, the step's 16
    /// rows of `k`, and column `n0` in its 128-byte slab of columns when the rows are longer.
    fn b_at(&self, kt: usize, n0: usize) -> usize {
        if !self.b.n_major {
            return self.k_at(kt, self.n) + n0 * self.b.pitch;
        }
        let rows = kt * 32 / self.es;
        let col = n0 * self.es;
        let slab = if self.n * self.es > 128 { (col / 128) * self.k * 128 + col % 128 } else { col };
        rows * self.b.pitch + slab
    }
}

impl Lowerer<'_> {
    /// The matrix descriptor (i64) of the operand at shared address `base + off`, `fixed` its other bits.
    fn descriptor(&mut self, fixed: u64, base: &str, off: usize) -> String {
        let x = self.f.inst(format!("add i32 {base}, {off}"));
        let x = self.f.inst(format!("lshr i32 {x}, 4"));
        let x = self.f.inst(format!("and i32 {x}, 16383"));
        let x = self.f.inst(format!("zext i32 {x} to i64"));
        self.f.inst(format!("or i64 {x}, {}", fixed as i64))
    }

    /// The 32-byte step `kt` of `k`: one `wgmma` per 256 columns, into `accs` (`D = A·B + D`, or with
    /// `add` false `D = A·B`: the registers' old values are ignored).
    fn wgmma_step(&mut self, op: &Operands, kt: usize, accs: &mut [String], add: bool) {
        // A: a descriptor ("l"), or four registers of fragments ("r").
        let a_args: Vec<String> = match &op.a {
            AOperand::Shared(a0) => vec![format!("i64 {}", self.descriptor(op.fixed, a0, op.k_at(kt, op.m)))],
            AOperand::Registers(ra) => self.a_fragment(ra, op.a_lty, 0, kt).into_iter().map(|x| format!("i32 {x}")).collect(),
        };
        for n0 in (0..op.n).step_by(MAX_N) {
            let nn = MAX_N.min(op.n - n0);
            let db = self.descriptor(op.b.fixed, &op.b0, op.b_at(kt, n0));
            let regs = &accs[n0 / 2..(n0 + nn) / 2];
            let r = regs.len();
            let outs = (0..r).map(|i| format!("${i}")).collect::<Vec<_>>().join(",");
            // Inputs after the outputs: A (one operand or four), B, scale-d.
            let a_ops = if a_args.len() == 1 {
                format!("${r}")
            } else {
                format!("{{{}}}", (0..4).map(|i| format!("${}", r + i)).collect::<Vec<_>>().join(","))
            };
            let (b_at, d_at) = (r + a_args.len(), r + a_args.len() + 1);
            // scale-d is a predicate operand: set from an input register (1: D += A·B).
            let text = format!(
                "{{ .reg .pred p; setp.ne.b32 p, ${d_at}, 0; wgmma.mma_async.sync.aligned.m64n{nn}{} {{{outs}}}, {a_ops}, ${b_at}, p, 1, 1{}; }}",
                op.shape, op.tail
            );
            let a_cons = if a_args.len() == 1 { vec!["l".to_string()] } else { vec!["r".to_string(); 4] };
            let cons: Vec<String> = (0..r)
                .map(|_| "=f".to_string())
                .chain(a_cons)
                .chain(["l".into(), "r".into()])
                .chain((0..r).map(|i| i.to_string()))
                .collect();
            let args: Vec<String> = a_args
                .iter()
                .cloned()
                .chain([format!("i64 {db}"), format!("i32 {}", add as i32)])
                .chain(regs.iter().map(|x| format!("float {x}")))
                .collect();
            let ret = format!("{{ {} }}", vec!["float"; r].join(", "));
            let res = self.f.inst(format!("call {ret} asm sideeffect \"{text}\", \"{}\"({}) #1", cons.join(","), args.join(", ")));
            for i in 0..r {
                accs[n0 / 2 + i] = self.f.inst(format!("extractvalue {ret} {res}, {i}"));
            }
        }
    }

    /// A lagged fp8 dot (one promotion group): the sum its previous iteration left running (the loop's
    /// hidden carried tile, [`Lowerer::pending`]) is waited for and added to the accumulator, then this
    /// iteration's group is issued into the same registers and left running; the loop's exit adds the
    /// last one.
    fn dot_wgmma_lagged_fp8(&mut self, result: ValueId, op: &Operands, steps: usize, accs: Vec<String>) -> Result<Vec<String>, CodegenError> {
        let running = self.pending.remove(&result).expect("the loop set up the running sum");
        let mut sum = self.wait_wgmma(running, 0);
        let total = self.add_sums(&accs, &sum);
        self.fence_wgmma();
        for kt in 0..steps {
            self.wgmma_step(op, kt, &mut sum, kt > 0);
        }
        self.commit_wgmma();
        // The pipeline's next copies are issued while the tensor cores work.
        self.pipe_prefetch()?;
        self.pending.insert(result, sum);
        Ok(total)
    }

    /// After the wait for a dot whose A is in registers: an empty instruction that reads them, so that
    /// they stay allocated (unchanged) while the tensor cores may still read them.
    fn keep_a_until_here(&mut self, op: &Operands) {
        let AOperand::Registers((_, regs)) = &op.a else { return };
        let t = op.a_lty;
        let cons = vec!["r"; regs.len().div_ceil(2)].join(",");
        let words: Vec<String> = regs
            .chunks(2)
            .map(|p| {
                let hi = p.get(1).unwrap_or(&p[0]);
                let v = self.f.inst(format!("insertelement <2 x {t}> poison, {t} {}, i32 0", p[0]));
                let v = self.f.inst(format!("insertelement <2 x {t}> {v}, {t} {hi}, i32 1"));
                let w = self.f.inst(format!("bitcast <2 x {t}> {v} to i32"));
                format!("i32 {w}")
            })
            .collect();
        self.f.emit(format!("call void asm sideeffect \"\", \"{cons}\"({}) #1", words.join(", ")));
    }

    /// `acc + sum`, register by register (an fp8 group's sum promoted into the f32 accumulator).
    pub(super) fn add_sums(&mut self, acc: &[String], sum: &[String]) -> Vec<String> {
        acc.iter().zip(sum).map(|(a, s)| self.f.inst(format!("fadd float {a}, {s}"))).collect()
    }

    fn commit_wgmma(&mut self) {
        self.f.emit("call void asm sideeffect \"wgmma.commit_group.sync.aligned;\", \"~{memory}\"() #1");
    }

    /// `wgmma.fence.sync.aligned`: orders this warpgroup's register and shared-memory accesses before
    /// the `wgmma`s that follow.
    fn fence_wgmma(&mut self) {
        self.f.emit("call void asm sideeffect \"wgmma.fence.sync.aligned;\", \"~{memory}\"() #1");
    }

    /// `wgmma.wait_group.sync.aligned n` (all but the last `n` committed groups are done) with the
    /// accumulators passed through it, so that their later uses depend on the wait.
    pub(super) fn wait_wgmma(&mut self, accs: Vec<String>, n: usize) -> Vec<String> {
        let r = accs.len();
        let cons: Vec<String> = (0..r).map(|_| "=f".to_string()).chain((0..r).map(|i| i.to_string())).collect();
        let args: Vec<String> = accs.iter().map(|x| format!("float {x}")).collect();
        let ret = format!("{{ {} }}", vec!["float"; r].join(", "));
        let res = self.f.inst(format!(
            "call {ret} asm sideeffect \"wgmma.wait_group.sync.aligned {n};\", \"{},~{{memory}}\"({}) #1",
            cons.join(","),
            args.join(", ")
        ));
        (0..r).map(|i| self.f.inst(format!("extractvalue {ret} {res}, {i}"))).collect()
    }
}
