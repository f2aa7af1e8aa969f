//! 64-byte aligned storage without `unsafe`.
//!
//! `Vec<f32>` only promises 4-byte alignment. We store whole cache lines instead: a
//! `#[repr(align(64))]` block of 16 floats is 64 bytes with no padding, so a `Vec` of blocks is a
//! run of aligned cache lines, and `bytemuck` can view it as `&[f32]` safely.

use bytemuck::{Pod, Zeroable};
use std::ops::{Deref, DerefMut};

// ANCHOR: cache_line
/// One cache line: 16 floats, 64 bytes, aligned to 64 bytes.
#[derive(Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C, align(64))]
struct CacheLine([f32; 16]);

/// A growable buffer of `f32` whose first element is 64-byte aligned.
#[derive(Clone, PartialEq, Default)]
pub struct AlignedVec {
    lines: Vec<CacheLine>,
    len: usize,
}

impl AlignedVec {
    pub fn zeros(len: usize) -> Self {
        AlignedVec { lines: vec![CacheLine([0.0; 16]); len.div_ceil(16)], len }
    }
}

impl Deref for AlignedVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice::<CacheLine, f32>(&self.lines)[..self.len]
    }
}
// ANCHOR_END: cache_line

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut::<CacheLine, f32>(&mut self.lines)[..self.len]
    }
}

impl std::fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
