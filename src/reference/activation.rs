use crate::tensor::Tensor;

/// `max(x, 0)`
pub fn relu_forward(x: &Tensor) -> Tensor {
    Tensor::from_fn(x.shape(), |i| x.as_slice()[i].max(0.0))
}

/// `grad_y` where `x > 0`, else 0.
pub fn relu_backward(x: &Tensor, grad_y: &Tensor) -> Tensor {
    Tensor::from_fn(x.shape(), |i| if x.as_slice()[i] > 0.0 { grad_y.as_slice()[i] } else { 0.0 })
}

/// `1 / (1 + exp(-x))`, computed in `f64`.
pub fn sigmoid(x: &Tensor) -> Tensor {
    Tensor::from_fn(x.shape(), |i| (1.0 / (1.0 + (-(x.as_slice()[i] as f64)).exp())) as f32)
}

/// Softmax over the last axis of a `[rows, cols]` tensor, computed in `f64`.
pub fn softmax(x: &Tensor) -> Tensor {
    let &[rows, cols] = x.shape() else { panic!("x must be [rows, cols]") };
    let mut y = Tensor::zeros(&[rows, cols]);
    for r in 0..rows {
        let row: Vec<f64> = (0..cols).map(|c| x[[r, c]] as f64).collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for c in 0..cols {
            y[[r, c]] = ((row[c] - m).exp() / sum) as f32;
        }
    }
    y
}
