//! Chapter 11: `exp` on whole vectors, written once for every instruction set, and the sigmoid
//! and softmax built on it.
//!
//! `e^x = 2^k e^r` with `k = round(x / ln 2)` and `r = x - k ln 2` in `[-ln2/2, ln2/2]`: the
//! power of two is built from the exponent bits, and `e^r` on that short interval is a
//! polynomial. Every step is a vector instruction, so 4, 8 or 16 exponentials cost about what
//! one does.

use crate::kernels::simd::SimdF32;

// ANCHOR: simd_math
/// What `exp` needs beyond [`SimdF32`]: the other arithmetic, a blend, and a way to write an
/// exponent field.
pub(crate) trait SimdMath: SimdF32 {
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `min(a, b)`, which is `b` when either is NaN (x86's rule, as for [`SimdF32::max`]).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a` in the lanes of `m`, `b` elsewhere.
    fn blend(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    /// `2^k` for lanes holding whole numbers `k` in `-126..=127`: `k + 127` written into the
    /// exponent field of a float whose mantissa is zero.
    fn pow2(self, k: Self::V) -> Self::V;
}
// ANCHOR_END: simd_math

// ANCHOR: exp_constants
/// Inputs are clamped to `[EXP_LO, EXP_HI]` before the reduction. Below `EXP_LO` the true
/// result is below half the smallest subnormal float and rounds to 0; above `EXP_HI` it is
/// beyond `f32::MAX` (about `e^88.72`) and must be infinite. Inside, `k` stays in `-150..=128`.
const EXP_LO: f32 = -104.0;
const EXP_HI: f32 = 89.0;
/// `ln 2` in two parts (Cody and Waite): `LN2_HI` has 9 significant bits, so `k * LN2_HI` is
/// exact for every `|k| < 2^15` and `x - k * LN2_HI` loses nothing; `LN2_LO` carries the rest.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding and subtracting it rounds a float of magnitude below `2^22` to the
/// nearest whole number (ties to even), with SSE2's instructions alone.
const ROUND: f32 = 12_582_912.0;
/// `e^r ~ 1 + r + r^2 P(r)` on `[-ln2/2, ln2/2]`, `P` of degree 5 fitted for the smallest
/// relative error (the coefficients of Cephes' `expf`, S. Moshier, whose last one, 0.50000001,
/// is 0.5 in `f32`); the Taylor coefficients would be `1/720, 1/120, 1/24, 1/6, 1/2`.
const P: [f32; 6] = [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
// ANCHOR_END: exp_constants

// ANCHOR: exp
/// `e^x` in every lane, within [`crate::kernels::math::EXP_MAX_ULPS`] units in the last place
/// of the exact result. `exp(+inf) = +inf`, `exp(-inf) = 0`, results above `f32::MAX` are
/// `+inf`, results below `f32::MIN_POSITIVE` are subnormal (gradual underflow, nothing is
/// flushed) down to 0, and a NaN input comes back as itself.
#[inline(always)]
pub(crate) fn exp<S: SimdMath>(s: S, x: S::V) -> S::V {
    let xc = s.min(s.max(x, s.splat(EXP_LO)), s.splat(EXP_HI));
    // k = round(x / ln 2): x * log2(e), then the add-and-subtract rounding.
    let round = s.splat(ROUND);
    let k = s.sub(s.add(s.mul(xc, s.splat(std::f32::consts::LOG2_E)), round), round);
    // r = x - k ln 2, in [-0.35, 0.35].
    let r = s.mul_add(k, s.splat(-LN2_HI), xc);
    let r = s.mul_add(k, s.splat(-LN2_LO), r);
    // e^r = 1 + r + r^2 P(r), P by Horner's rule.
    let mut p = s.splat(P[0]);
    for c in &P[1..] {
        p = s.mul_add(p, r, s.splat(*c));
    }
    let er = s.add(s.mul_add(p, s.mul(r, r), r), s.splat(1.0));
    // 2^k in two factors, 2^k1 * 2^k2 with k1 = round(k / 2): each is a normal float for every
    // k in -150..=128, so a result that underflows is rounded once, in the last multiply, and
    // one that overflows becomes +inf there.
    let k1 = s.sub(s.add(s.mul(k, s.splat(0.5)), round), round);
    let k2 = s.sub(k, k1);
    let y = s.mul(s.mul(er, s.pow2(k1)), s.pow2(k2));
    // The clamp turned NaN into a number (x86's max returns its second operand): put it back.
    s.blend(s.eq(x, x), y, x)
}
// ANCHOR_END: exp

/// `y[i] = e^x[i]`.
#[inline(always)]
pub(crate) fn exp_forward<S: SimdMath>(s: S, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "exp: lengths differ");
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    for start in (0..x.len()).step_by(S::LANES) {
        let n = x.len() - start;
        // SAFETY: both slices have `x.len()` floats, `start < x.len()`, and `load_n`/`store_n`
        // touch `min(n, LANES)` floats from `start`.
        unsafe { s.store_n(py.add(start), exp(s, s.load_n(px.add(start), n)), n) }
    }
}

// ANCHOR: sigmoid
/// `y = 1 / (1 + e^-x)` for `x >= 0` and `e^x / (1 + e^x)` for `x < 0`, as the scalar kernel:
/// one `exp(-|x|)`, one division, and the numerator chosen by the sign.
#[inline(always)]
pub(crate) fn sigmoid_forward<S: SimdMath>(s: S, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "sigmoid_forward: lengths differ");
    let (zero, one) = (s.zero(), s.splat(1.0));
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    for start in (0..x.len()).step_by(S::LANES) {
        let n = x.len() - start;
        // SAFETY: as in `exp_forward`.
        unsafe {
            let v = s.load_n(px.add(start), n);
            let e = exp(s, s.min(v, s.sub(zero, v)));
            let numerator = s.blend(s.gt(zero, v), e, one);
            s.store_n(py.add(start), s.div(numerator, s.add(one, e)), n);
        }
    }
}
// ANCHOR_END: sigmoid

// ANCHOR: softmax
/// The scalar kernel's softmax with its exponentials vectorised: every row shifted by its
/// maximum, then one `exp` pass over the whole batch (rows of 10 fill no vector, a batch of
/// them does), then each row divided by its sum, added in the same order as the scalar kernel.
#[inline(always)]
pub(crate) fn softmax_forward<S: SimdMath>(s: S, cols: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "softmax_forward: lengths differ");
    for (x_row, y_row) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let m = x_row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (o, &v) in y_row.iter_mut().zip(x_row) {
            *o = v - m;
        }
    }
    let p = y.as_mut_ptr();
    for start in (0..y.len()).step_by(S::LANES) {
        let n = y.len() - start;
        // SAFETY: `start < y.len()` and `load_n`/`store_n` touch `min(n, LANES)` floats of `y`.
        unsafe { s.store_n(p.add(start), exp(s, s.load_n(p.add(start), n)), n) }
    }
    for y_row in y.chunks_exact_mut(cols) {
        let sum: f32 = y_row.iter().sum();
        for o in y_row.iter_mut() {
            *o /= sum;
        }
    }
}
// ANCHOR_END: softmax
