//! Chapters 4-6: every kernel written once, generic over [`SimdF32`](super::simd::SimdF32).
//!
//! Each function here is `#[inline(always)]`: it has no instruction set of its own and is
//! compiled into the `#[target_feature]` wrapper in `kernels::x86::<isa>` that calls it, where
//! every vector method becomes one or two instructions of that set. Tile sizes are const
//! generics chosen by the wrapper: the algorithm is the same for 4, 8 or 16 lanes, the number
//! of registers it may fill is not.
//!
//! Bounds: every kernel starts with the same length checks as the scalar ones (the shapes'
//! `check_*` methods) and every `unsafe` pointer access below is inside the ranges those checks
//! establish; each block says which.

// A tile loop indexes several arrays (accumulators, loaded vectors) by the same (row,
// column); index loops show the tile, iterator chains would hide it.
#![allow(clippy::needless_range_loop)]

mod activation;
mod conv2d;
#[cfg(feature = "ch11")]
mod exp;
#[cfg(feature = "ch7")]
mod im2col;
mod linear;
#[cfg(feature = "ch7")]
mod linear_update;
#[cfg(feature = "ch7")]
mod memory;
#[cfg(feature = "ch7")]
pub(crate) mod packed_once;
mod pool;
#[cfg(feature = "ch7")]
mod pool_winners;
mod sgd;
#[cfg(feature = "ch10")]
pub(crate) mod winograd;

pub(crate) use activation::{relu_backward, relu_forward};
#[cfg(feature = "ch11")]
pub(crate) use conv2d::{ChannelLoop, Intrinsics, conv2d_forward_with};
pub(crate) use conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, recomputed_pixels};
#[cfg(feature = "ch11")]
pub(crate) use exp::{SimdMath, exp_forward, sigmoid_forward, softmax_forward};
#[cfg(feature = "ch7")]
pub(crate) use im2col::{conv2d_backward_input_im2col, conv2d_backward_weight_im2col, conv2d_forward_im2col};
#[cfg(feature = "ch7")]
use linear::feature_tiles;
pub(crate) use linear::{linear_backward_input, linear_backward_weight, linear_forward};
#[cfg(feature = "ch7")]
pub(crate) use linear_update::{linear_backward_input_sweep, linear_backward_sweep, linear_backward_update};
#[cfg(feature = "ch7")]
pub(crate) use memory::read_sum;
pub(crate) use pool::{max_pool2d_backward, max_pool2d_forward};
#[cfg(feature = "ch7")]
pub(crate) use pool_winners::{max_pool2d_backward_winners, max_pool2d_forward_winners};
pub(crate) use sgd::{axpy, sgd_momentum_update};
