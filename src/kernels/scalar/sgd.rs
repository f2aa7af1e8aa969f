//! The optimiser's element-wise updates.

// ANCHOR: sgd
/// `y += alpha * x`. A plain SGD step is `axpy(-lr, grad, param)`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// SGD with momentum as PyTorch defines it: `v = momentum * v + grad`, `param -= lr * v`.
pub fn sgd_momentum_update(param: &mut [f32], grad: &[f32], velocity: &mut [f32], lr: f32, momentum: f32) {
    assert!(grad.len() == param.len() && velocity.len() == param.len(), "sgd_momentum_update: lengths differ");
    for ((p, &g), v) in param.iter_mut().zip(grad).zip(velocity.iter_mut()) {
        *v = momentum * *v + g;
        *p -= lr * *v;
    }
}
// ANCHOR_END: sgd
