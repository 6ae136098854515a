//! `#[kernel]` (work in progress).
