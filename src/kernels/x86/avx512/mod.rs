//! Chapter 6: the AVX-512 kernel table (32 registers of 16 floats).
//!
//! Every function is `#[target_feature(enable = "avx512f")]`: the generic kernel it calls is
//! compiled inside it with AVX-512 instructions. Such a function can only be called where the
//! CPU is known to have them, which is why the table holding them exists only after
//! `Isa::Avx512.check()` passed.

mod activation;
#[cfg(feature = "ch11")]
pub(crate) mod asm;
#[cfg(feature = "ch11")]
pub(crate) mod bf16;
mod conv2d;
#[cfg(feature = "ch11")]
pub(crate) mod exp;
#[cfg(feature = "ch11")]
pub(crate) mod int8;
mod linear;
#[cfg(feature = "ch7")]
mod memory;
mod peak;
mod pool;
mod sgd;
#[cfg(feature = "ch7")]
mod tiles;
mod vector;
#[cfg(feature = "ch10")]
pub(crate) mod winograd;

pub(crate) use activation::{relu_backward, relu_forward};
pub(crate) use conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
// Chapter 11 vectorises `exp`; before it the sigmoid (one per image) and the softmax (one
// 10-way row per digit) stay scalar, too little work to be worth a polynomial.
#[cfg(not(feature = "ch11"))]
use crate::kernels::scalar::{sigmoid_forward, softmax_forward};
#[cfg(feature = "ch11")]
pub(crate) use exp::{sigmoid_forward, softmax_forward};
pub(crate) use linear::{linear_backward_input, linear_backward_weight};
// Chapter 7 chooses fc1's tile from the L1's ways; before it, chapter 6's 12 rows.
#[cfg(not(feature = "ch7"))]
pub(crate) use linear::linear_forward;
#[cfg(feature = "ch7")]
pub(crate) use memory::read_sum;
pub(crate) use pool::{max_pool2d_backward, max_pool2d_forward};
pub(crate) use sgd::{axpy, sgd_momentum_update};
#[cfg(feature = "ch7")]
pub(crate) use tiles::linear_forward;
pub(crate) use vector::Avx512;

use crate::kernels::{Isa, Kernels};

// ANCHOR: table
pub(crate) static KERNELS: Kernels = Kernels {
    isa: Isa::Avx512,
    conv2d_forward,
    conv2d_backward_input,
    conv2d_backward_weight,
    max_pool2d_forward,
    max_pool2d_backward,
    linear_forward,
    linear_backward_input,
    linear_backward_weight,
    relu_forward,
    relu_backward,
    sigmoid_forward,
    softmax_forward,
    axpy,
    sgd_momentum_update,
    peak: peak::peak,
    peak_flops_per_iteration: peak::FLOPS_PER_ITERATION,
};
// ANCHOR_END: table
