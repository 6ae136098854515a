//! How a tile's elements are spread over the threads of a program.
//!
//! One layout family, chosen by the element count alone, so that every elementwise op, cast, reshape and
//! `expand_dims` is free (operands always agree) and row-major order is kept:
//!
//! - `numel >= threads` (*blocked*): thread `t` holds `regs = numel / threads` elements in chunks of
//!   `vec` consecutive elements (row-major flat index); chunk `c` of thread `t` starts at
//!   `c * threads * vec + t * vec`. Consecutive threads hold consecutive chunks, so a warp's accesses to a
//!   contiguous tile are coalesced, and a chunk of 16 bytes becomes one 128-bit access.
//! - `numel < threads` (*replicated*): thread `t` holds element `t % numel`. Threads `t >= numel` hold
//!   copies; only *owners* (`t < numel`) store or do atomics, so an element is written once.
//!
//! A scalar (`numel == 1`) is held by every thread and is uniform, which is what lets `if`, loop bounds and
//! barriers depend on it. Ops whose operands need other elements than a thread holds (`broadcast` of a
//! non-scalar, `permute`, reductions along an axis, `dot`) exchange them through shared memory.
//!
//! `dot` results that run on tensor cores live in a second layout, [`MmaLayout`] (the `mma.sync`
//! accumulator fragments), and so do elementwise ops on them; where each row lies in one warp, their row
//! reductions live in a third, [`RowLayout`]. Which value lives where is decided before lowering
//! (`lower::place`); any other use converts to the blocked layout through shared memory.

/// The largest number of consecutive elements a thread holds (8: 16 bytes of f16, two 16-byte accesses
/// of f32), in kernels without 1-byte tiles.
pub const MAX_VEC: usize = 8;
/// The same in kernels that load or store 1-byte elements (fp8, i8): 16, so that one chunk is one
/// 16-byte access of them.
pub const MAX_VEC_BYTES: usize = 16;

/// The layout of a tile of `numel` elements over `threads` threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub numel: usize,
    pub threads: usize,
    /// Consecutive elements per chunk (1 when replicated).
    pub vec: usize,
}

impl Layout {
    /// The layout of every tile of `numel` elements; `None` when `numel > threads` is not a multiple of
    /// `threads` (tiles of power-of-two sizes always fit).
    pub fn of(numel: usize, threads: usize) -> Option<Layout> {
        Self::with_max_vec(numel, threads, MAX_VEC)
    }

    /// [`Layout::of`] with another cap on `vec` (one cap for every tile of a kernel keeps elementwise
    /// ops free).
    pub fn with_max_vec(numel: usize, threads: usize, max_vec: usize) -> Option<Layout> {
        if numel < threads {
            return Some(Layout { numel, threads, vec: 1 });
        }
        if numel % threads != 0 {
            return None;
        }
        let per = numel / threads;
        let vec = (1..=max_vec).rev().find(|v| v.is_power_of_two() && per % v == 0).unwrap_or(1);
        Some(Layout { numel, threads, vec })
    }

    /// Registers (elements) each thread holds.
    pub fn regs(&self) -> usize {
        if self.replicated() {
            1
        } else {
            self.numel / self.threads
        }
    }

    /// True when some threads hold copies of others' elements.
    pub fn replicated(&self) -> bool {
        self.numel < self.threads
    }

    /// The flat element index of register `r` of thread `t` (host-side twin of the generated code).
    pub fn element(&self, t: usize, r: usize) -> usize {
        if self.replicated() {
            t % self.numel
        } else {
            (r / self.vec) * self.threads * self.vec + t * self.vec + r % self.vec
        }
    }

    /// The register at which thread `t` holds flat element `j`, if it holds it.
    pub fn register_of(&self, t: usize, j: usize) -> Option<usize> {
        if self.replicated() {
            return (t % self.numel == j).then_some(0);
        }
        let chunk = j / self.vec;
        (chunk % self.threads == t).then(|| (chunk / self.threads) * self.vec + j % self.vec)
    }

    /// `element(t, r) = t * mul + add(r)` in the blocked case: (`vec`, `(r / vec) * threads * vec + r % vec`).
    pub fn element_affine(&self, r: usize) -> (usize, usize) {
        (self.vec, (r / self.vec) * self.threads * self.vec + r % self.vec)
    }
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect()
}

/// A broadcast that needs no exchange: for each register `r` of the result (layout `dst`, shape
/// `dst_shape`), the register of the source (layout `src`, shape `src_shape`: leading dims added, size-1
/// dims stretched) that holds the element it copies, the same in every thread. `None` when some thread
/// would need an element another thread holds (then the broadcast goes through shared memory).
///
/// This is the case of a row vector broadcast over the rows of a tile whose rows are as wide as the
/// threads' chunks of the vector: e.g. `x[512]` over `w[8, 512]` on one warp with 16-element chunks,
/// where thread `t` holds `x[16t..16t+16]` and the same columns of every row of `w`.
pub fn local_broadcast(src: Layout, src_shape: &[usize], dst: Layout, dst_shape: &[usize]) -> Option<Vec<usize>> {
    // A table walk over every (thread, register): keep it to tiles a program could hold.
    if dst.threads * dst.regs() > 1 << 20 || dst.threads != src.threads {
        return None;
    }
    let pad = dst_shape.len() - src_shape.len();
    let (dst_strides, src_strides) = (strides(dst_shape), strides(src_shape));
    let source = |i: usize| -> usize {
        (0..src_shape.len())
            .filter(|&d| src_shape[d] != 1)
            .map(|d| (i / dst_strides[pad + d]) % dst_shape[pad + d] * src_strides[d])
            .sum()
    };
    (0..dst.regs())
        .map(|r| {
            let mut reg = None;
            for t in 0..dst.threads {
                let at = src.register_of(t, source(dst.element(t, r)))?;
                if *reg.get_or_insert(at) != at {
                    return None;
                }
            }
            reg
        })
        .collect()
}

/// The accumulator layout of `mma.sync.m16n8k*` over a `[m, n]` tile: warps form a `wm x wn` grid, warp
/// `w` owns the `(m / wm) x (n / wn)` block at `(w / wn, w % wn)`, made of `tm x tn` tiles of 16x8; in each
/// tile, lane `4 * g + q` holds `(g, 2q)`, `(g, 2q + 1)`, `(g + 8, 2q)`, `(g + 8, 2q + 1)`. Register
/// `r = (i * tn + j) * 4 + c` is element `c` of tile `(i, j)`. No replicas: every warp has its own block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmaLayout {
    pub m: usize,
    pub n: usize,
    pub wm: usize,
    pub wn: usize,
}

impl MmaLayout {
    /// The layout for a `[m, n]` accumulator on `warps` warps: the warp grid whose blocks are the most
    /// square (fewest fragment loads per `mma`), or `None` when the 16x8 tiles cannot be split evenly.
    pub fn choose(m: usize, n: usize, warps: usize) -> Option<MmaLayout> {
        if m % 16 != 0 || n % 8 != 0 {
            return None;
        }
        (0..=warps.trailing_zeros())
            .map(|e| (1usize << e, warps >> e))
            .filter(|&(wm, wn)| wm * wn == warps && (m / 16) % wm == 0 && (n / 8) % wn == 0)
            .min_by_key(|&(wm, wn)| (m / wm + n / wn, wm))
            .map(|(wm, wn)| MmaLayout { m, n, wm, wn })
    }

    /// 16-row tiles per warp.
    pub fn tm(&self) -> usize {
        self.m / self.wm / 16
    }

    /// 8-column tiles per warp.
    pub fn tn(&self) -> usize {
        self.n / self.wn / 8
    }

    /// Registers (elements) per thread.
    pub fn regs(&self) -> usize {
        self.tm() * self.tn() * 4
    }

    /// The flat (row-major) distance of register `r` from register 0 in every thread.
    pub fn offset(&self, r: usize) -> usize {
        let (tile, c) = (r / 4, r % 4);
        let (i, j) = (tile / self.tn(), tile % self.tn());
        (i * 16 + 8 * (c / 2)) * self.n + j * 8 + c % 2
    }

    /// `(row, col)` of register `r` of thread `t` (host-side twin of the generated code).
    pub fn element(&self, t: usize, r: usize) -> (usize, usize) {
        let (w, lane) = (t / 32, t % 32);
        let (g, q) = (lane / 4, lane % 4);
        let (tile, c) = (r / 4, r % 4);
        let (i, j) = (tile / self.tn(), tile % self.tn());
        let row = (w / self.wn) * (self.m / self.wm) + i * 16 + g + 8 * (c / 2);
        let col = (w % self.wn) * (self.n / self.wn) + j * 8 + 2 * q + c % 2;
        (row, col)
    }
}

impl MmaLayout {
    /// The layout for a `[m, n]` accumulator whose warps are stacked along `m` only (`wn == 1`), so that
    /// each row lies in one quad of lanes (row reductions are two shuffles, and the tile can be the A
    /// operand of the next `dot` from registers); `None` when `m / 16` does not split over the warps.
    pub fn choose_rows(m: usize, n: usize, warps: usize) -> Option<MmaLayout> {
        (m % 16 == 0 && n % 8 == 0 && (m / 16) % warps == 0).then_some(MmaLayout { m, n, wm: warps, wn: 1 })
    }

    /// The layout of this tile's rows (a row reduction of it, or what broadcasts over them): only when
    /// each row lies in one warp.
    pub fn rows(&self) -> Option<RowLayout> {
        (self.wn == 1).then_some(RowLayout { m: self.m, wm: self.wm })
    }

    /// The register of [`MmaLayout::rows`] holding the row of register `r`.
    pub fn row_reg(&self, r: usize) -> usize {
        (r / 4 / self.tn()) * 2 + (r % 4) / 2
    }
}

/// The rows of mma accumulator layouts with `wn == 1`, as a `[m]` or `[m, 1]` tile: in warp `w`, lane
/// `4 * g + q`, register `2 * i + h` is row `w * (m / wm) + 16 * i + 8 * h + g` (rows `g` and `g + 8` of
/// each of the warp's 16-row tiles). The four lanes of a quad hold the same rows (they hold the columns
/// of those rows in the accumulator), so lane `q == 0` is the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    pub m: usize,
    pub wm: usize,
}

impl RowLayout {
    /// Registers (rows) per thread.
    pub fn regs(&self) -> usize {
        2 * self.m / self.wm / 16
    }

    /// The row held in register `r` of thread `t` (host-side twin of the generated code).
    pub fn row(&self, t: usize, r: usize) -> usize {
        (t / 32) * (self.m / self.wm) + 16 * (r / 2) + 8 * (r % 2) + (t % 32) / 4
    }

    /// The distance of register `r`'s row from register 0's.
    pub fn offset(&self, r: usize) -> usize {
        16 * (r / 2) + 8 * (r % 2)
    }
}

/// Where 16-byte chunk `chunk` of row `row` of a shared-memory tile with `chunks` chunks per row is
/// stored: XOR-swizzled so that the 8 rows an `ldmatrix` reads at one logical chunk (and the 8 chunks a
/// quarter warp writes) fall in 8 different 16-byte bank groups. Identity when `chunks` is not a power
/// of two.
pub fn swizzle(row: usize, chunk: usize, chunks: usize) -> usize {
    if !chunks.is_power_of_two() {
        return chunk;
    }
    let lanes = chunks.min(8);
    chunk ^ ((row / (8 / lanes)) % lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mma_layout_covers_each_element_once() {
        for (m, n, warps) in [(128, 128, 8), (128, 128, 4), (64, 64, 4), (16, 64, 4), (128, 256, 8), (32, 8, 1), (64, 32, 8)] {
            let l = MmaLayout::choose(m, n, warps).unwrap_or_else(|| panic!("{m}x{n} on {warps} warps"));
            let mut seen = vec![0u32; m * n];
            for t in 0..warps * 32 {
                let (i0, j0) = l.element(t, 0);
                for r in 0..l.regs() {
                    let (i, j) = l.element(t, r);
                    seen[i * n + j] += 1;
                    assert_eq!(i * n + j, i0 * n + j0 + l.offset(r), "{l:?} t {t} r {r}");
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{l:?}");
        }
        assert_eq!(MmaLayout::choose(128, 128, 8).map(|l| (l.wm, l.wn)), Some((2, 4)));
        assert_eq!(MmaLayout::choose(16, 8, 4), None);
    }

    #[test]
    fn row_layout_holds_the_rows_of_the_accumulator() {
        for (m, n, warps) in [(64, 64, 4), (128, 64, 8), (64, 128, 4), (16, 32, 1), (128, 128, 4)] {
            let l = MmaLayout::choose_rows(m, n, warps).unwrap();
            let rows = l.rows().unwrap();
            let mut seen = vec![0u32; m];
            for t in 0..warps * 32 {
                for r in 0..l.regs() {
                    assert_eq!(rows.row(t, l.row_reg(r)), l.element(t, r).0, "{l:?} t {t} r {r}");
                }
                for r in 0..rows.regs() {
                    assert_eq!(rows.row(t, r), rows.row(t, 0) + rows.offset(r));
                    if t % 4 == 0 {
                        seen[rows.row(t, r)] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{rows:?}: each row has one owner");
        }
        assert_eq!(MmaLayout::choose_rows(64, 64, 8), None);
        assert_eq!(MmaLayout::choose(64, 64, 4).unwrap().rows(), None);
    }

    #[test]
    fn swizzle_spreads_ldmatrix_rows_over_bank_groups() {
        for chunks in [1, 2, 4, 8, 16, 32] {
            for c in 0..chunks {
                for r0 in (0..64).step_by(8) {
                    let groups: std::collections::BTreeSet<usize> =
                        (r0..r0 + 8).map(|r| (r * chunks + swizzle(r, c, chunks)) % 8).collect();
                    assert_eq!(groups.len(), 8, "chunks {chunks} c {c} r0 {r0}");
                }
                // A permutation within each row.
                let row: std::collections::BTreeSet<usize> = (0..chunks).map(|c| swizzle(5, c, chunks)).collect();
                assert_eq!(row.len(), chunks);
            }
        }
    }

    /// Every element is held by exactly one owner register, for the sizes kernels use.
    #[test]
    fn each_element_has_one_owner() {
        for threads in [32, 128, 256] {
            for numel in [1, 2, 3, 16, 100, 128, 256, 1024, 4096, 2048 * 3] {
                let Some(l) = Layout::of(numel, threads) else {
                    assert!(numel > threads && numel % threads != 0);
                    continue;
                };
                let mut seen = vec![0u32; numel];
                for t in 0..threads.min(numel.max(1)) {
                    for r in 0..l.regs() {
                        seen[l.element(t, r)] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "numel {numel}, threads {threads}: {seen:?}");
            }
        }
    }

    /// A row vector over the rows of a tile is local when the rows are as wide as the threads' chunks of
    /// the vector; not when they are not, nor for a column vector.
    #[test]
    fn local_broadcast_only_where_each_thread_holds_its_sources() {
        // x[512] over w[8, 512] on 32 threads, 16-element chunks: thread t holds x[16t..16t + 16].
        let (x, w) = (Layout::with_max_vec(512, 32, 16).unwrap(), Layout::with_max_vec(8 * 512, 32, 16).unwrap());
        let regs = local_broadcast(x, &[1, 512], w, &[8, 512]).expect("local");
        assert_eq!(regs.len(), w.regs());
        assert!(regs.iter().enumerate().all(|(r, &s)| s == r % 16));
        // With 8-element chunks (16-bit tiles), x[256] over w[4, 256] on 32 threads is local too.
        let (x, w) = (Layout::of(256, 32).unwrap(), Layout::of(4 * 256, 32).unwrap());
        assert!(local_broadcast(x, &[256], w, &[4, 256]).is_some());
        // Rows of 512 over 128 threads: a thread's chunks of w are in other columns than its chunk of x.
        let (x, w) = (Layout::with_max_vec(512, 128, 16).unwrap(), Layout::with_max_vec(8 * 512, 128, 16).unwrap());
        assert_eq!(local_broadcast(x, &[1, 512], w, &[8, 512]), None);
        // A column vector (one value per row) is spread over threads: not local.
        let (c, w) = (Layout::with_max_vec(8, 32, 16).unwrap(), Layout::with_max_vec(8 * 512, 32, 16).unwrap());
        assert_eq!(local_broadcast(c, &[8, 1], w, &[8, 512]), None);
        // A replicated source of one element per thread group: a scalar-like [1, 1] is local.
        let (s, w) = (Layout::of(1, 32).unwrap(), Layout::of(64, 32).unwrap());
        assert_eq!(local_broadcast(s, &[1, 1], w, &[2, 32]), Some(vec![0, 0]));
    }

    #[test]
    fn chunks_are_consecutive_and_at_most_max_vec() {
        let l = Layout::of(4096, 128).unwrap();
        assert_eq!((l.regs(), l.vec), (32, 8));
        assert_eq!(l.element(1, 0), 8);
        assert_eq!(l.element(1, 7), 15);
        assert_eq!(l.element(0, 8), 1024);
        let l = Layout::of(256, 128).unwrap();
        assert_eq!((l.regs(), l.vec), (2, 2));
    }

    /// The TMA unit's swizzle (`CU_TENSOR_MAP_SWIZZLE_{32,64,128}B`) places a box's row `r`, byte `b` at
    /// the box-linear address with bits [4, 4 + log2(span/16)) XORed with bits [7, ...) (boxes start
    /// 1024-byte aligned): the layout `swizzle` gives the `dot` operands `lower::tma` fills, for rows of
    /// 32, 64 and 128 bytes (longer rows are 128-byte slabs, each such a box).
    #[test]
    fn tma_swizzle_is_the_operand_swizzle() {
        for row_bytes in [32usize, 64, 128] {
            let mask = row_bytes / 16 - 1;
            for row in 0..64 {
                for b in (0..row_bytes).step_by(16) {
                    let linear = row * row_bytes + b;
                    let tma = linear ^ (((linear >> 7) & mask) << 4);
                    let ours = row * row_bytes + 16 * swizzle(row, b / 16, row_bytes / 16);
                    assert_eq!(tma, ours, "row {row}, byte {b}, {row_bytes}-byte rows");
                }
            }
        }
    }
}
