use crate::tensor::Tensor;

/// Kernel size, stride and padding of the only convolution the networks use.
const K: usize = 3;
const PAD: usize = 1;

/// The input coordinate that output coordinate `o` reads through tap `k`, if inside `0..len`.
fn input_coord(o: usize, k: usize, len: usize) -> Option<usize> {
    (o + k).checked_sub(PAD).filter(|&i| i < len)
}

// ANCHOR: conv2d_reference
/// x `[n, c_in, h, w]`, weight `[c_out, c_in, 3, 3]`, bias `[c_out]` -> y `[n, c_out, h, w]`
///
/// $$ y_{b,o,i,j} = \beta_o + \sum_{c} \sum_{r=0}^{2} \sum_{s=0}^{2} w_{o,c,r,s}\, x_{b,c,i+r-1,j+s-1} $$
pub fn conv2d_forward(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let &[n, c_in, h, w] = x.shape() else { panic!("x must be [n, c_in, h, w]") };
    let c_out = weight.shape()[0];
    assert_eq!(weight.shape(), [c_out, c_in, K, K], "weight must be [c_out, c_in, 3, 3]");
    assert_eq!(bias.shape(), [c_out], "bias must be [c_out]");
    let mut y = Tensor::zeros(&[n, c_out, h, w]);
    for b in 0..n {
        for o in 0..c_out {
            for i in 0..h {
                for j in 0..w {
                    let mut sum = bias[[o]] as f64;
                    for c in 0..c_in {
                        for r in 0..K {
                            for s in 0..K {
                                if let (Some(ii), Some(jj)) = (input_coord(i, r, h), input_coord(j, s, w)) {
                                    sum += weight[[o, c, r, s]] as f64 * x[[b, c, ii, jj]] as f64;
                                }
                            }
                        }
                    }
                    y[[b, o, i, j]] = sum as f32;
                }
            }
        }
    }
    y
}
// ANCHOR_END: conv2d_reference

/// Gradients of a convolution: given `grad_y = dL/dy`, returns `(dL/dx, dL/dweight, dL/dbias)`.
///
/// Each is the forward formula differentiated with respect to one of its inputs: a term
/// `w[o,c,r,s] * x[b,c,i+r-1,j+s-1]` of `y[b,o,i,j]` sends `grad_y[b,o,i,j] * w` to that `x`
/// and `grad_y[b,o,i,j] * x` to that `w`.
pub fn conv2d_backward(x: &Tensor, weight: &Tensor, grad_y: &Tensor) -> (Tensor, Tensor, Tensor) {
    let &[n, c_in, h, w] = x.shape() else { panic!("x must be [n, c_in, h, w]") };
    let c_out = weight.shape()[0];
    assert_eq!(grad_y.shape(), [n, c_out, h, w], "grad_y must be [n, c_out, h, w]");
    let mut gx = vec![0f64; x.len()];
    let mut gw = vec![0f64; weight.len()];
    let mut gb = vec![0f64; c_out];
    let gx_at = |b: usize, c: usize, i: usize, j: usize| ((b * c_in + c) * h + i) * w + j;
    let gw_at = |o: usize, c: usize, r: usize, s: usize| ((o * c_in + c) * K + r) * K + s;
    for b in 0..n {
        for o in 0..c_out {
            for i in 0..h {
                for j in 0..w {
                    let g = grad_y[[b, o, i, j]] as f64;
                    gb[o] += g;
                    for c in 0..c_in {
                        for r in 0..K {
                            for s in 0..K {
                                if let (Some(ii), Some(jj)) = (input_coord(i, r, h), input_coord(j, s, w)) {
                                    gx[gx_at(b, c, ii, jj)] += g * weight[[o, c, r, s]] as f64;
                                    gw[gw_at(o, c, r, s)] += g * x[[b, c, ii, jj]] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (to_tensor(x.shape(), &gx), to_tensor(weight.shape(), &gw), to_tensor(&[c_out], &gb))
}

pub(super) fn to_tensor(shape: &[usize], values: &[f64]) -> Tensor {
    Tensor::from_fn(shape, |i| values[i] as f32)
}
