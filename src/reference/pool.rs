use crate::tensor::Tensor;

/// The winner of the 2x2 window at output `(i, j)` of channel `(b, c)`: the first maximum in
/// scan order (`(0,0), (0,1), (1,0), (1,1)`), as PyTorch picks it.
fn argmax(x: &Tensor, b: usize, c: usize, i: usize, j: usize) -> (usize, usize) {
    let mut best = (2 * i, 2 * j);
    for (di, dj) in [(0, 1), (1, 0), (1, 1)] {
        let (ii, jj) = (2 * i + di, 2 * j + dj);
        if x[[b, c, ii, jj]] > x[[b, c, best.0, best.1]] {
            best = (ii, jj);
        }
    }
    best
}

// ANCHOR: max_pool2d_reference
/// x `[n, c, h, w]` -> y `[n, c, h/2, w/2]`, each output the maximum of its 2x2 window.
pub fn max_pool2d_forward(x: &Tensor) -> Tensor {
    let &[n, c, h, w] = x.shape() else { panic!("x must be [n, c, h, w]") };
    let mut y = Tensor::zeros(&[n, c, h / 2, w / 2]);
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let (ii, jj) = argmax(x, b, ch, i, j);
                    y[[b, ch, i, j]] = x[[b, ch, ii, jj]];
                }
            }
        }
    }
    y
}

/// The gradient of each output goes to the input that won its window; all others get zero.
pub fn max_pool2d_backward(x: &Tensor, grad_y: &Tensor) -> Tensor {
    let &[n, c, h, w] = x.shape() else { panic!("x must be [n, c, h, w]") };
    assert_eq!(grad_y.shape(), [n, c, h / 2, w / 2], "grad_y must be [n, c, h/2, w/2]");
    let mut gx = Tensor::zeros(x.shape());
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let (ii, jj) = argmax(x, b, ch, i, j);
                    gx[[b, ch, ii, jj]] = grad_y[[b, ch, i, j]];
                }
            }
        }
    }
    gx
}
// ANCHOR_END: max_pool2d_reference
