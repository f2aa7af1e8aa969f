//! The optimiser's updates: streaming, one vector at a time.

use crate::kernels::simd::SimdF32;

// ANCHOR: axpy
/// `y += alpha * x`.
#[inline(always)]
pub(crate) fn axpy<S: SimdF32>(s: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: lengths differ");
    let a = s.splat(alpha);
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    for start in (0..x.len()).step_by(S::LANES) {
        let n = x.len() - start;
        // SAFETY: both slices have `x.len()` floats and `start < x.len()`.
        unsafe {
            let v = s.mul_add(a, s.load_n(px.add(start), n), s.load_n(py.add(start), n));
            s.store_n(py.add(start), v, n);
        }
    }
}
// ANCHOR_END: axpy

/// `v = momentum * v + grad; param -= lr * v`.
#[inline(always)]
pub(crate) fn sgd_momentum_update<S: SimdF32>(
    s: S,
    param: &mut [f32],
    grad: &[f32],
    velocity: &mut [f32],
    lr: f32,
    momentum: f32,
) {
    let len = param.len();
    assert!(grad.len() == len && velocity.len() == len, "sgd_momentum_update: lengths differ");
    let (mu, neg_lr) = (s.splat(momentum), s.splat(-lr));
    let (pp, pg, pv) = (param.as_mut_ptr(), grad.as_ptr(), velocity.as_mut_ptr());
    for start in (0..len).step_by(S::LANES) {
        let n = len - start;
        // SAFETY: all three slices have `len` floats and `start < len`.
        unsafe {
            let v = s.mul_add(mu, s.load_n(pv.add(start), n), s.load_n(pg.add(start), n));
            s.store_n(pv.add(start), v, n);
            s.store_n(pp.add(start), s.mul_add(neg_lr, v, s.load_n(pp.add(start), n)), n);
        }
    }
}
