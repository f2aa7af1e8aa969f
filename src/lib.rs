//! # simd-cnn
//!
//! A convolutional network trained on a CPU, written four times: in plain Rust, then with SSE,
//! AVX2 and AVX-512. This crate is the tested code behind the book in `book/`; every listing in
//! the book is included from these files.
//!
//! | chapter | feature | what it adds |
//! | --- | --- | --- |
//! | 1. Tensors and memory | `ch1` | [`tensor`]: shapes, NCHW and NHWC, 64-byte aligned storage, seeded init |
//! | 2. The forward pass | `ch2` | [`reference`](mod@reference) (the naive oracle), [`kernels`] (the table, scalar entries), [`nn`] layers and losses |
//! | 3. Backprop and training | `ch3` | backward passes, [`train`] (SGD), [`model`] (the MLP and the CNN), [`data`] (MNIST) |
//! | 4. SSE | `ch4` | `kernels::x86::sse`, the `SimdF32` trait and the generic kernels, and `bench`, the tooling of the benchmarks and `bench_report` (peaks, timings, reports; not shown here) |
//! | 5. AVX2 + FMA | `ch5` | `kernels::x86::avx2` |
//! | 6. AVX-512 | `ch6` | `kernels::x86::avx512`: masked tails, 32 registers |
//! | 7. Memory and caches | `ch7` | blocking, packing, fusion |
//! | 8. Threads | `ch8` | [`parallel`]: training on a pool of threads, the same result for any number |
//! | 9. The cat/dog trainer | `ch9` | `data::catdog` (images, cache), [`checkpoint`], [`trainer`] (the loop, its state, curves, pictures) |
//! | 10. Fewer multiplications | `ch10` | Winograd convolution |
//! | 11. Down to the metal | `ch11` | a vectorised `exp` (`kernels::math`) in the SIMD sigmoid and softmax, the AVX-512 convolution tile in `asm!` (`Kernels::avx512_asm`), bf16 convolutions (`Precision`) |
//!
//! Features are cumulative (`ch5` includes `ch1`..`ch4`) and `full` (the default) is `ch11`, so
//! `cargo test --no-default-features --features ch3` builds the crate as it stands at the end of
//! chapter 3. Chapters gate whole modules, never statements inside a function, and a module
//! uses only modules of its own chapter or earlier ones (`scripts/check-rooms.py` checks both).
#![cfg_attr(not(feature = "full"), allow(dead_code, unused_imports))]
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

#[cfg(feature = "ch1")]
pub mod tensor;

#[cfg(feature = "ch2")]
pub mod kernels;
#[cfg(feature = "ch2")]
pub mod nn;
#[cfg(feature = "ch2")]
pub mod reference;

#[cfg(feature = "ch3")]
pub mod data;
#[cfg(feature = "ch3")]
pub mod files;
#[cfg(feature = "ch3")]
pub mod model;
#[cfg(feature = "ch3")]
pub mod train;

// The benchmark and report machinery behind `cargo bench`, `bench_report` and the tables of the
// book: public because those targets are built on it, but tooling rather than something the book
// teaches, so it is left out of the API documentation.
#[cfg(feature = "ch4")]
#[doc(hidden)]
pub mod bench;

#[cfg(feature = "ch8")]
pub mod parallel;

#[cfg(feature = "ch9")]
pub mod checkpoint;
#[cfg(feature = "ch9")]
pub mod trainer;
