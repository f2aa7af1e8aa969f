//! ReLU forward and backward: one vector at a time, the last one partial.

use crate::kernels::simd::SimdF32;

// ANCHOR: relu_forward
/// `x = max(x, 0)` in place.
#[inline(always)]
pub(crate) fn relu_forward<S: SimdF32>(s: S, x: &mut [f32]) {
    let zero = s.zero();
    let p = x.as_mut_ptr();
    for start in (0..x.len()).step_by(S::LANES) {
        let n = x.len() - start;
        // SAFETY: `start < x.len()`, and `load_n`/`store_n` touch `min(n, LANES)` floats, all
        // inside `x`.
        unsafe { s.store_n(p.add(start), s.max(s.load_n(p.add(start), n), zero), n) }
    }
}
// ANCHOR_END: relu_forward

// ANCHOR: relu_backward
/// `grad = grad` where `y > 0`, else 0, in place.
#[inline(always)]
pub(crate) fn relu_backward<S: SimdF32>(s: S, y: &[f32], grad: &mut [f32]) {
    assert_eq!(y.len(), grad.len(), "relu_backward: lengths differ");
    let zero = s.zero();
    let (py, pg) = (y.as_ptr(), grad.as_mut_ptr());
    for start in (0..y.len()).step_by(S::LANES) {
        let n = y.len() - start;
        // SAFETY: both slices have `y.len()` floats and `start < y.len()`.
        unsafe {
            let positive = s.gt(s.load_n(py.add(start), n), zero);
            s.store_n(pg.add(start), s.select(positive, s.load_n(pg.add(start), n)), n);
        }
    }
}
// ANCHOR_END: relu_backward
