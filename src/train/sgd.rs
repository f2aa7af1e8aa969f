use crate::kernels::Kernels;
use crate::nn::Param;
use crate::tensor::Tensor;

// ANCHOR: sgd
/// Stochastic gradient descent, optionally with momentum, as `torch.optim.SGD` defines it:
///
/// ```text
/// momentum == 0:  param -= lr * grad
/// otherwise:      v = momentum * v + grad;  param -= lr * v
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    /// One velocity per parameter, created at the first step.
    pub(crate) velocity: Vec<Tensor>,
}

impl Sgd {
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd { lr, momentum, velocity: Vec::new() }
    }

    /// Applies one update to every parameter from the gradient stored in it.
    pub fn step(&mut self, k: &Kernels, params: &mut [&mut Param]) {
        if self.momentum == 0.0 {
            for p in params.iter_mut() {
                k.axpy(-self.lr, p.grad.as_slice(), p.value.as_mut_slice());
            }
            return;
        }
        self.ensure_velocity(params);
        for (p, v) in params.iter_mut().zip(&mut self.velocity) {
            let Param { value, grad } = &mut **p;
            k.sgd_momentum_update(value.as_mut_slice(), grad.as_slice(), v.as_mut_slice(), self.lr, self.momentum);
        }
    }
    // ANCHOR_END: sgd

    /// Creates the velocities (zero) at the first step with momentum.
    pub(crate) fn ensure_velocity(&mut self, params: &[&mut Param]) {
        if self.velocity.is_empty() {
            self.velocity = params.iter().map(|p| Tensor::zeros(p.value.shape())).collect();
        }
        assert_eq!(self.velocity.len(), params.len(), "the optimiser was created for other parameters");
    }

    /// The velocities (empty before the first step, or without momentum); checkpoints save them.
    pub fn velocity(&self) -> &[Tensor] {
        &self.velocity
    }

    /// Restores velocities saved by a checkpoint.
    pub fn set_velocity(&mut self, velocity: Vec<Tensor>) {
        self.velocity = velocity;
    }
}
