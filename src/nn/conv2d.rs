use super::Param;
use crate::kernels::{Conv2dShape, Kernels};
use crate::tensor::Tensor;
use crate::tensor::init::{Rng, he_normal};

// ANCHOR: conv2d
/// PyTorch's `nn.Conv2d(c_in, c_out, 3, padding=1)` on NHWC activations.
///
/// The weight is stored HWIO, `[3, 3, c_in, c_out]`; `tensor::layout::hwio_to_oihw` gives
/// PyTorch's `[c_out, c_in, 3, 3]` (checkpoints do that).
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Param,
    pub bias: Param,
}

impl Conv2d {
    /// He-normal weights with fan-in `9 * c_in`, zero bias.
    pub fn new(c_in: usize, c_out: usize, rng: &mut Rng) -> Self {
        Conv2d {
            weight: Param::new(he_normal(&[3, 3, c_in, c_out], 9 * c_in, rng)),
            bias: Param::new(Tensor::zeros(&[c_out])),
        }
    }

    pub fn c_in(&self) -> usize {
        self.weight.value.shape()[2]
    }

    pub fn c_out(&self) -> usize {
        self.weight.value.shape()[3]
    }

    pub fn shape(&self, n: usize, h: usize, w: usize) -> Conv2dShape {
        Conv2dShape { n, h, w, c_in: self.c_in(), c_out: self.c_out() }
    }

    /// x `[n, h, w, c_in]` -> y `[n, h, w, c_out]`; with `fuse_relu`, y is `max(conv, 0)`.
    pub fn forward(&self, k: &Kernels, shape: &Conv2dShape, x: &[f32], y: &mut [f32], fuse_relu: bool) {
        assert_eq!((shape.c_in, shape.c_out), (self.c_in(), self.c_out()), "shape does not match the layer");
        k.conv2d_forward(shape, x, self.weight.value.as_slice(), self.bias.value.as_slice(), y, fuse_relu);
    }

    /// Given dL/dy (of the convolution's output before any ReLU), stores dL/dW and dL/db in
    /// the parameters' `grad` and, when asked for, writes dL/dx. The first layer of a network
    /// passes `None`: nothing upstream needs the gradient of the image.
    pub fn backward(
        &mut self,
        k: &Kernels,
        shape: &Conv2dShape,
        x: &[f32],
        grad_y: &[f32],
        grad_x: Option<&mut [f32]>,
    ) {
        assert_eq!((shape.c_in, shape.c_out), (self.c_in(), self.c_out()), "shape does not match the layer");
        k.conv2d_backward_weight(shape, x, grad_y, self.weight.grad.as_mut_slice(), self.bias.grad.as_mut_slice());
        if let Some(grad_x) = grad_x {
            k.conv2d_backward_input(shape, grad_y, self.weight.value.as_slice(), grad_x);
        }
    }
}
// ANCHOR_END: conv2d
