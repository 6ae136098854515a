//! Kernels (work in progress).
