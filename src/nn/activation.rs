use crate::kernels::Kernels;

/// `max(x, 0)`, in place.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

impl ReLU {
    pub fn forward(&self, k: &Kernels, x: &mut [f32]) {
        k.relu_forward(x);
    }

    /// dL/dy -> dL/dx in place, from the forward's output `y`.
    pub fn backward(&self, k: &Kernels, y: &[f32], grad: &mut [f32]) {
        k.relu_backward(y, grad);
    }
}

/// `1 / (1 + exp(-x))`: turns the cat/dog network's logit into the probability of "dog".
/// Training uses [`super::loss::bce_with_logits`], which folds the sigmoid into the loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;

impl Sigmoid {
    pub fn forward(&self, k: &Kernels, x: &[f32], y: &mut [f32]) {
        k.sigmoid_forward(x, y);
    }
}

/// Softmax over rows of `classes` values: turns the MLP's logits into probabilities.
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    pub classes: usize,
}

impl Softmax {
    pub fn forward(&self, k: &Kernels, x: &[f32], y: &mut [f32]) {
        k.softmax_forward(self.classes, x, y);
    }
}
