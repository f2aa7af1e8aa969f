use super::conv2d::to_tensor;
use crate::tensor::Tensor;

// ANCHOR: linear_reference
/// x `[n, in]`, weight `[out, in]`, bias `[out]` -> y `[n, out]`:  $y = x W^\top + \beta$.
pub fn linear_forward(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let &[n, d_in] = x.shape() else { panic!("x must be [n, in]") };
    let &[d_out, d_in_w] = weight.shape() else { panic!("weight must be [out, in]") };
    assert_eq!(d_in, d_in_w, "x has {d_in} features, weight expects {d_in_w}");
    Tensor::from_fn(&[n, d_out], |flat| {
        let (b, o) = (flat / d_out, flat % d_out);
        let dot: f64 = (0..d_in).map(|i| x[[b, i]] as f64 * weight[[o, i]] as f64).sum();
        (bias[[o]] as f64 + dot) as f32
    })
}

/// Given `grad_y = dL/dy`: $\partial L/\partial x = G W$, $\partial L/\partial W = G^\top x$,
/// $\partial L/\partial \beta = \sum_b G_{b,:}$.
pub fn linear_backward(x: &Tensor, weight: &Tensor, grad_y: &Tensor) -> (Tensor, Tensor, Tensor) {
    let &[n, d_in] = x.shape() else { panic!("x must be [n, in]") };
    let d_out = weight.shape()[0];
    assert_eq!(grad_y.shape(), [n, d_out], "grad_y must be [n, out]");
    let mut gx = vec![0f64; n * d_in];
    let mut gw = vec![0f64; d_out * d_in];
    let mut gb = vec![0f64; d_out];
    for b in 0..n {
        for o in 0..d_out {
            let g = grad_y[[b, o]] as f64;
            gb[o] += g;
            for i in 0..d_in {
                gx[b * d_in + i] += g * weight[[o, i]] as f64;
                gw[o * d_in + i] += g * x[[b, i]] as f64;
            }
        }
    }
    (to_tensor(&[n, d_in], &gx), to_tensor(&[d_out, d_in], &gw), to_tensor(&[d_out], &gb))
}
// ANCHOR_END: linear_reference
