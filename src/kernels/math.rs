//! Chapter 11: the vectorised `exp` of each kernel table, its error bound, and the sweep over
//! every `f32` that checks the bound.

use super::{Isa, Kernels, shapes::check_len};
use rayon::prelude::*;

// ANCHOR: exp_max_ulps
/// The most the vectorised `exp` may differ from the exact `e^x`, in units in the last place
/// of the result, for every `f32` input and every instruction set: the polynomial's own error
/// (0.05 ulp), the roundings of Horner's rule and of the last addition `1 + (r + r^2 P)`
/// (each up to half an ulp of what it rounds, the last one dominant), and the rounding of `r`
/// carried through `e^r` (up to 0.2 ulp); about 1 ulp in all. The scaling by `2^k` is exact unless the result is
/// subnormal, where it adds one more half ulp. SSE2 has no fused multiply-add and rounds twice
/// per Horner step. Chapter 11 derives the budget term by term; `examples/exp_error.rs` prints
/// the measured maximum of each instruction set.
pub const EXP_MAX_ULPS: f64 = 2.0;
// ANCHOR_END: exp_max_ulps

impl Kernels {
    /// `y[i] = e^x[i]`: the vectorised `exp` of this table, `f32::exp` in the scalar one.
    pub fn exp(&self, x: &[f32], y: &mut [f32]) {
        check_len("exp output", y, x.len());
        match self.isa {
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            #[cfg(target_arch = "x86_64")]
            Isa::Sse => unsafe { super::x86::sse::exp::exp(x, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { super::x86::avx2::exp::exp(x, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { super::x86::avx512::exp::exp(x, y) },
            _ => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = v.exp();
                }
            }
        }
    }
}

// ANCHOR: ulp_error
/// `|got - want|` in units in the last place of `want` as an `f32`: the spacing of the floats
/// around `want` (`2^-149` below `f32::MIN_POSITIVE`). A correctly rounded result is within
/// 0.5. An infinity counts as exact only where `want` rounds to it, and NaN only for NaN.
pub fn ulp_error(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let nearest = want as f32;
    if nearest.is_infinite() || got.is_infinite() {
        return if got == nearest { 0.0 } else { f64::INFINITY };
    }
    // 2^(e - 23) for |want| in [2^e, 2^(e+1)): the exponent field of `want` less 23, written
    // back into a float whose mantissa is zero; at least 2^-149.
    let exponent_field = (want.abs().to_bits() >> 52).max(1023 - 126);
    let ulp = f64::from_bits((exponent_field - 23) << 52);
    (got as f64 - want).abs() / ulp
}
// ANCHOR_END: ulp_error

/// The error of one table's `exp` over every `f32`.
#[derive(Clone, Copy, Debug)]
pub struct ExpError {
    pub isa: Isa,
    /// Inputs tried: every bit pattern, 2^32.
    pub inputs: u64,
    /// The largest [`ulp_error`].
    pub max_ulps: f64,
    /// An input where it occurs.
    pub worst_input: f32,
    /// Inputs whose result is the correctly rounded one (error at most 0.5 ulp).
    pub correctly_rounded: u64,
}

// ANCHOR: exp_errors
/// [`ulp_error`] of each table's `exp` against `f64::exp`, for all 2^32 bit patterns (NaNs,
/// infinities, subnormals and the inputs whose results overflow or underflow included), on
/// every core. The reference is computed once per input and shared by the tables.
pub fn exp_errors(tables: &[&Kernels]) -> Vec<ExpError> {
    const CHUNK: u64 = 1 << 16;
    let empty: Vec<ExpError> = tables
        .iter()
        .map(|k| ExpError { isa: k.isa(), inputs: 0, max_ulps: 0.0, worst_input: 0.0, correctly_rounded: 0 })
        .collect();
    let merge = |mut a: Vec<ExpError>, b: Vec<ExpError>| {
        for (a, b) in a.iter_mut().zip(b) {
            if b.max_ulps > a.max_ulps {
                (a.max_ulps, a.worst_input) = (b.max_ulps, b.worst_input);
            }
            a.inputs += b.inputs;
            a.correctly_rounded += b.correctly_rounded;
        }
        a
    };
    (0..(1u64 << 32) / CHUNK)
        .into_par_iter()
        .fold(
            || (empty.clone(), vec![0.0f32; CHUNK as usize]),
            |(errors, mut y), chunk| {
                let x: Vec<f32> = (chunk * CHUNK..(chunk + 1) * CHUNK).map(|b| f32::from_bits(b as u32)).collect();
                let want: Vec<f64> = x.iter().map(|&v| (v as f64).exp()).collect();
                let mut here = empty.clone();
                for (k, e) in tables.iter().zip(&mut here) {
                    k.exp(&x, &mut y);
                    for ((&g, &w), &v) in y.iter().zip(&want).zip(&x) {
                        let u = ulp_error(g, w);
                        if u > e.max_ulps {
                            (e.max_ulps, e.worst_input) = (u, v);
                        }
                        e.correctly_rounded += u64::from(u <= 0.5);
                    }
                    e.inputs += CHUNK;
                }
                (merge(errors, here), y)
            },
        )
        .map(|(errors, _)| errors)
        .reduce(|| empty.clone(), merge)
}
// ANCHOR_END: exp_errors
