//! Chapter 2 onwards: the kernels, the table that holds them, and the choice of instruction set.
//!
//! Layers never call a kernel directly. They call a method of [`Kernels`], a table with one
//! function pointer per op, and there is one such table per instruction set ([`Isa`]): scalar
//! Rust from chapter 2, then SSE, AVX2 and AVX-512 from chapters 4 to 6. A program picks a table
//! once (`Kernels::best()` or `Kernels::for_isa(isa)`), and everything built on the layers gets
//! faster as chapters add tables.
//!
//! Layouts: activations NHWC, convolution weights HWIO `[3, 3, c_in, c_out]`, linear weights
//! `[out, in]`. [`crate::reference`] holds the naive NCHW versions the kernels are tested against.

#[cfg(feature = "ch11")]
mod asm_table;
mod conv_algorithm;
mod isa;
mod precision;
mod shapes;
mod table;

pub mod scalar;

#[cfg(feature = "ch4")]
pub mod peak;

#[cfg(feature = "ch7")]
pub mod cache;
#[cfg(feature = "ch7")]
pub mod forward_tile;
#[cfg(feature = "ch11")]
pub mod int8;
#[cfg(feature = "ch11")]
pub mod math;
#[cfg(feature = "ch7")]
pub mod memory;

#[cfg(all(target_arch = "x86_64", feature = "ch4"))]
mod generic;
#[cfg(all(target_arch = "x86_64", feature = "ch4"))]
pub(crate) mod simd;
#[cfg(all(target_arch = "x86_64", feature = "ch4"))]
pub(crate) mod x86;

pub use conv_algorithm::{ConvAlgorithm, ConvAlgorithmError, WINOGRAD_MIN_CHANNELS, WinogradSize, winograd_pays};
pub use isa::{Isa, IsaError, MAX_ISA_ENV};
pub use precision::{Precision, PrecisionError, cpu_has_bf16};
pub use shapes::{Conv2dShape, LinearShape, Pool2dShape};
pub use table::Kernels;
