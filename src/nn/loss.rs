//! The two losses, each returning the batch mean and writing its gradient with respect to the
//! logits. Both fold the final activation into the loss: the gradient of cross-entropy through
//! a sigmoid or a softmax is simply `probability - target`, and computing it that way is both
//! cheaper and free of the `log(0)` that a separate activation could produce.

use crate::kernels::Kernels;

// ANCHOR: bce_with_logits
/// Binary cross-entropy on `sigmoid(logits)` against labels 0 or 1, averaged over the batch.
/// Writes `(sigmoid(z) - t) / n` into `grad`, using it as scratch for the probabilities first.
pub fn bce_with_logits(k: &Kernels, logits: &[f32], labels: &[f32], grad: &mut [f32]) -> f32 {
    let n = logits.len();
    assert!(labels.len() == n && grad.len() == n, "bce_with_logits: lengths differ");
    k.sigmoid_forward(logits, grad);
    let mut loss = 0.0f64;
    for ((g, &z), &t) in grad.iter_mut().zip(logits).zip(labels) {
        let z = z as f64;
        // max(z, 0) - z t + log(1 + exp(-|z|)) equals -[t log s + (1-t) log(1-s)] with
        // s = sigmoid(z), and cannot overflow or take the log of zero.
        loss += z.max(0.0) - z * t as f64 + (-z.abs()).exp().ln_1p();
        *g = (*g - t) / n as f32;
    }
    (loss / n as f64) as f32
}
// ANCHOR_END: bce_with_logits

// ANCHOR: softmax_cross_entropy
/// Cross-entropy of `softmax(logits)` against class labels, averaged over the batch (the loss
/// is computed from the logits in f64, the gradient from the probabilities).
/// `logits`, `probs` and `grad` are `[n, classes]`; writes the probabilities into `probs` and
/// `(probs - onehot(label)) / n` into `grad`.
pub fn softmax_cross_entropy(
    k: &Kernels,
    classes: usize,
    logits: &[f32],
    labels: &[u8],
    probs: &mut [f32],
    grad: &mut [f32],
) -> f32 {
    let n = labels.len();
    assert!(
        logits.len() == n * classes && probs.len() == logits.len() && grad.len() == logits.len(),
        "softmax_cross_entropy: lengths differ"
    );
    k.softmax_forward(classes, logits, probs);
    let mut loss = 0.0f64;
    for (b, &label) in labels.iter().enumerate() {
        let label = label as usize;
        assert!(label < classes, "label {label} out of range for {classes} classes");
        let (z, p) = (&logits[b * classes..][..classes], &probs[b * classes..][..classes]);
        let g = &mut grad[b * classes..][..classes];
        // -log softmax(z)[label] = log(sum_c exp(z_c - m)) + m - z[label], with m the largest
        // logit: exact even where the probability of the label underflows to zero.
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = z.iter().map(|&zc| (zc as f64 - m).exp()).sum();
        loss += sum.ln() + m - z[label] as f64;
        for (c, (gc, &pc)) in g.iter_mut().zip(p).enumerate() {
            let target = if c == label { 1.0 } else { 0.0 };
            *gc = (pc - target) / n as f32;
        }
    }
    (loss / n as f64) as f32
}
// ANCHOR_END: softmax_cross_entropy
