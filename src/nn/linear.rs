use super::Param;
use crate::kernels::{Kernels, LinearShape};
use crate::tensor::Tensor;
use crate::tensor::init::{Rng, he_normal};

// ANCHOR: linear
/// `y = x W^T + b`, PyTorch's `nn.Linear`: weight `[out, in]`, bias `[out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Param,
    pub bias: Param,
}

impl Linear {
    /// He-normal weights (the layers of both networks feed a ReLU or a loss), zero bias.
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Self {
        Linear {
            weight: Param::new(he_normal(&[out_features, in_features], in_features, rng)),
            bias: Param::new(Tensor::zeros(&[out_features])),
        }
    }

    pub fn in_features(&self) -> usize {
        self.weight.value.shape()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.value.shape()[0]
    }

    pub fn shape(&self, batch: usize) -> LinearShape {
        LinearShape { batch, in_features: self.in_features(), out_features: self.out_features() }
    }

    /// x `[batch, in]` -> y `[batch, out]`
    pub fn forward(&self, k: &Kernels, batch: usize, x: &[f32], y: &mut [f32]) {
        k.linear_forward(&self.shape(batch), x, self.weight.value.as_slice(), self.bias.value.as_slice(), y);
    }

    /// Stores dL/dW and dL/db in the parameters' `grad` and, when asked for, writes dL/dx.
    pub fn backward(&mut self, k: &Kernels, batch: usize, x: &[f32], grad_y: &[f32], grad_x: Option<&mut [f32]>) {
        let shape = self.shape(batch);
        k.linear_backward_weight(&shape, x, grad_y, self.weight.grad.as_mut_slice(), self.bias.grad.as_mut_slice());
        if let Some(grad_x) = grad_x {
            k.linear_backward_input(&shape, grad_y, self.weight.value.as_slice(), grad_x);
        }
    }
}
// ANCHOR_END: linear
