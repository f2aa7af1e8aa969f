//! Fully connected layer on a batch: x `[batch, in]`, W `[out, in]` (PyTorch's layout), b `[out]`.

use crate::kernels::LinearShape;

// ANCHOR: linear_forward
/// ```text
/// y[b, o] = bias[o] + sum over i of x[b, i] * w[o, i]
/// ```
pub fn linear_forward(s: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    s.check_forward(x, weight, bias, y);
    let LinearShape { batch, in_features, out_features } = *s;
    for b in 0..batch {
        let x_row = &x[b * in_features..][..in_features];
        for o in 0..out_features {
            let w_row = &weight[o * in_features..][..in_features];
            let dot: f32 = x_row.iter().zip(w_row).map(|(a, b)| a * b).sum();
            y[b * out_features + o] = bias[o] + dot;
        }
    }
}
// ANCHOR_END: linear_forward

// ANCHOR: linear_backward_input
/// ```text
/// grad_x[b, i] = sum over o of grad_y[b, o] * w[o, i]
/// ```
pub fn linear_backward_input(s: &LinearShape, grad_y: &[f32], weight: &[f32], grad_x: &mut [f32]) {
    s.check_backward_input(grad_y, weight, grad_x);
    let LinearShape { batch, in_features, out_features } = *s;
    grad_x.fill(0.0);
    for b in 0..batch {
        let gx_row = &mut grad_x[b * in_features..][..in_features];
        for o in 0..out_features {
            let g = grad_y[b * out_features + o];
            let w_row = &weight[o * in_features..][..in_features];
            for (gx, &wt) in gx_row.iter_mut().zip(w_row) {
                *gx += g * wt;
            }
        }
    }
}
// ANCHOR_END: linear_backward_input

// ANCHOR: linear_backward_weight
/// ```text
/// grad_w[o, i] = sum over b of grad_y[b, o] * x[b, i]
/// grad_b[o]    = sum over b of grad_y[b, o]
/// ```
pub fn linear_backward_weight(
    s: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    s.check_backward_weight(x, grad_y, grad_weight, grad_bias);
    let LinearShape { batch, in_features, out_features } = *s;
    grad_weight.fill(0.0);
    grad_bias.fill(0.0);
    for b in 0..batch {
        let x_row = &x[b * in_features..][..in_features];
        for o in 0..out_features {
            let g = grad_y[b * out_features + o];
            grad_bias[o] += g;
            let gw_row = &mut grad_weight[o * in_features..][..in_features];
            for (gw, &v) in gw_row.iter_mut().zip(x_row) {
                *gw += g * v;
            }
        }
    }
}
// ANCHOR_END: linear_backward_weight

// ANCHOR: linear_backward_update
/// Chapter 7: the backward pass and SGD's update of the weight, `w -= lr * grad_w`, as the
/// three passes it fuses: the input gradient (from the weights before the update), the weight
/// gradient, the update. `grad_bias` gets the bias gradient.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_update(
    s: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_x: Option<&mut [f32]>,
    lr: f32,
) {
    if let Some(grad_x) = grad_x {
        linear_backward_input(s, grad_y, weight, grad_x);
    }
    let mut grad_weight = vec![0.0; s.weight_len()];
    linear_backward_weight(s, x, grad_y, &mut grad_weight, grad_bias);
    super::axpy(-lr, &grad_weight, weight);
}
// ANCHOR_END: linear_backward_update

/// Chapter 7: both gradients, as the two passes the vector kernels' single sweep replaces.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_sweep(
    s: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    weight: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_x: Option<&mut [f32]>,
) {
    if let Some(grad_x) = grad_x {
        linear_backward_input(s, grad_y, weight, grad_x);
    }
    linear_backward_weight(s, x, grad_y, grad_weight, grad_bias);
}
