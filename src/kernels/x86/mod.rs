//! Chapters 4-6: the x86-64 kernel tables. Each folder holds the same files: `vector.rs`
//! implements [`super::simd::SimdF32`] with that instruction set's intrinsics, the other files
//! instantiate the generic kernels of `kernels::generic` with tile sizes for its registers, and
//! `mod.rs` fills the kernel table.

#[cfg(feature = "ch4")]
pub(crate) mod sse;

#[cfg(feature = "ch5")]
pub(crate) mod avx2;

#[cfg(feature = "ch6")]
pub(crate) mod avx512;

#[cfg(feature = "ch7")]
pub(crate) mod im2col;
#[cfg(feature = "ch7")]
pub(crate) mod linear_update;
#[cfg(feature = "ch7")]
pub(crate) mod pool_winners;
