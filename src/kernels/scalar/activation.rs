//! Element-wise activations and the row-wise softmax.

// ANCHOR: relu
/// `x = max(x, 0)`, in place.
pub fn relu_forward(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// `grad = grad * (y > 0)`, in place. `y` is the ReLU's output: it is positive exactly where
/// the input was, so the input need not be kept.
pub fn relu_backward(y: &[f32], grad: &mut [f32]) {
    assert_eq!(y.len(), grad.len(), "relu_backward: lengths differ");
    for (g, &v) in grad.iter_mut().zip(y) {
        if v <= 0.0 {
            *g = 0.0;
        }
    }
}
// ANCHOR_END: relu

// ANCHOR: sigmoid
/// `y = 1 / (1 + exp(-x))`, written so that neither branch can overflow.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "sigmoid_forward: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = if v >= 0.0 {
            1.0 / (1.0 + (-v).exp())
        } else {
            let e = v.exp();
            e / (1.0 + e)
        };
    }
}
// ANCHOR_END: sigmoid

// ANCHOR: softmax
/// Softmax of each row of `cols` values: `y[j] = exp(x[j] - m) / sum_k exp(x[k] - m)` with `m`
/// the row's maximum, which changes nothing mathematically and keeps `exp` from overflowing.
pub fn softmax_forward(cols: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "softmax_forward: lengths differ");
    for (x_row, y_row) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let m = x_row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (o, &v) in y_row.iter_mut().zip(x_row) {
            *o = (v - m).exp();
            sum += *o;
        }
        for o in y_row.iter_mut() {
            *o /= sum;
        }
    }
}
// ANCHOR_END: softmax
