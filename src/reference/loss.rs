use crate::tensor::Tensor;

// ANCHOR: bce_reference
/// Binary cross-entropy of `sigmoid(z)` against labels in {0, 1}, averaged over the batch, and
/// its gradient with respect to the logits `z` (PyTorch's `BCEWithLogitsLoss`):
///
/// $$ L = \frac{1}{n}\sum_b -\big[t_b \log \sigma(z_b) + (1-t_b)\log(1-\sigma(z_b))\big],
///    \qquad \frac{\partial L}{\partial z_b} = \frac{\sigma(z_b) - t_b}{n} $$
pub fn bce_with_logits(z: &Tensor, labels: &[f32]) -> (f64, Tensor) {
    let n = z.len();
    assert_eq!(labels.len(), n, "one label per logit");
    let mut loss = 0.0;
    let mut grad = Tensor::zeros(z.shape());
    for b in 0..n {
        let (zb, t) = (z.as_slice()[b] as f64, labels[b] as f64);
        // log(1 + exp(-|z|)) + max(z, 0) - z t, the overflow-free form of the formula above.
        loss += zb.max(0.0) - zb * t + (-zb.abs()).exp().ln_1p();
        grad.as_mut_slice()[b] = ((1.0 / (1.0 + (-zb).exp()) - t) / n as f64) as f32;
    }
    (loss / n as f64, grad)
}
// ANCHOR_END: bce_reference

/// Cross-entropy of `softmax(z)` against class indices, averaged over the batch, and its
/// gradient with respect to `z`:
///
/// $$ L = \frac{1}{n}\sum_b \Big(\log \sum_c e^{z_{b,c}} - z_{b,t_b}\Big),
///    \qquad \frac{\partial L}{\partial z_{b,c}} = \frac{\mathrm{softmax}(z_b)_c - [c = t_b]}{n} $$
pub fn softmax_cross_entropy(z: &Tensor, labels: &[usize]) -> (f64, Tensor) {
    let &[n, k] = z.shape() else { panic!("z must be [n, classes]") };
    assert_eq!(labels.len(), n, "one label per row");
    let mut loss = 0.0;
    let mut grad = Tensor::zeros(z.shape());
    for b in 0..n {
        assert!(labels[b] < k, "label {} out of range for {k} classes", labels[b]);
        let row: Vec<f64> = (0..k).map(|c| z[[b, c]] as f64).collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss += log_sum - row[labels[b]];
        for c in 0..k {
            let target = if c == labels[b] { 1.0 } else { 0.0 };
            grad[[b, c]] = (((row[c] - log_sum).exp() - target) / n as f64) as f32;
        }
    }
    (loss / n as f64, grad)
}
