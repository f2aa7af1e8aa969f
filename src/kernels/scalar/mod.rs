//! Chapter 2: the scalar kernels, plain Rust and the baseline every other table is measured
//! against. They are written for clarity first; the compiler still vectorises some of their
//! inner loops with the SSE2 instructions every x86-64 CPU has (chapter 4 shows where).

mod activation;
mod conv2d;
#[cfg(feature = "ch7")]
mod im2col;
mod linear;
mod peak;
mod pool;
mod sgd;

pub use activation::{relu_backward, relu_forward, sigmoid_forward, softmax_forward};
pub use conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
#[cfg(all(target_arch = "x86_64", feature = "ch7"))]
pub(crate) use im2col::{col2im, im2col};
#[cfg(feature = "ch7")]
pub use im2col::{conv2d_backward_input_im2col, conv2d_backward_weight_im2col, conv2d_forward_im2col};
pub use linear::{
    linear_backward_input, linear_backward_sweep, linear_backward_update, linear_backward_weight, linear_forward,
};
pub use pool::{max_pool2d_backward, max_pool2d_backward_winners, max_pool2d_forward, max_pool2d_forward_winners};
pub use sgd::{axpy, sgd_momentum_update};

use super::{Isa, Kernels};

// ANCHOR: scalar_table
pub(crate) static KERNELS: Kernels = Kernels {
    isa: Isa::Scalar,
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
// ANCHOR_END: scalar_table
