//! The CUDA runtime (being written).
