use crate::kernels::{Kernels, Pool2dShape};

/// PyTorch's `nn.MaxPool2d(2)` on NHWC activations. It has no parameters; the methods are here
/// so that a model reads as a list of layers.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxPool2d;

impl MaxPool2d {
    /// x `[n, h, w, c]` -> y `[n, h/2, w/2, c]`
    pub fn forward(&self, k: &Kernels, shape: &Pool2dShape, x: &[f32], y: &mut [f32]) {
        k.max_pool2d_forward(shape, x, y);
    }

    /// dL/dy -> dL/dx; needs the forward's input and output to know which input won each
    /// window. With `fuse_relu` it is also the backward pass of a ReLU just before the pool.
    pub fn backward(
        &self,
        k: &Kernels,
        shape: &Pool2dShape,
        x: &[f32],
        y: &[f32],
        grad_y: &[f32],
        grad_x: &mut [f32],
        fuse_relu: bool,
    ) {
        k.max_pool2d_backward(shape, x, y, grad_y, grad_x, fuse_relu);
    }
}
