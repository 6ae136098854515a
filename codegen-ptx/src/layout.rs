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
//! Tensor-core operand and accumulator layouts will be further variants of this type.

/// The largest number of consecutive elements a thread holds (8: 16 bytes of f16, two 16-byte accesses
/// of f32).
pub const MAX_VEC: usize = 8;

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
        if numel < threads {
            return Some(Layout { numel, threads, vec: 1 });
        }
        if numel % threads != 0 {
            return None;
        }
        let per = numel / threads;
        let vec = (1..=MAX_VEC).rev().find(|v| v.is_power_of_two() && per % v == 0).unwrap_or(1);
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

    /// `element(t, r) = t * mul + add(r)` in the blocked case: (`vec`, `(r / vec) * threads * vec + r % vec`).
    pub fn element_affine(&self, r: usize) -> (usize, usize) {
        (self.vec, (r / self.vec) * self.threads * self.vec + r % self.vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
