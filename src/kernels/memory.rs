//! Chapter 7: the read-bandwidth kernel of each instruction set, the yardstick of the memory
//! side as the peak loops (`kernels::peak`) are of the arithmetic.
//!
//! `bench::memory` times it on buffers sized to fit each cache level and reports how many
//! bytes per second arrive from each.

#[cfg(target_arch = "x86_64")]
use super::Isa;
use super::Kernels;

// ANCHOR: read_sum
/// The sum of one vector every `stride` vectors of `data` (a vector is `k.isa().lanes()`
/// floats; `stride` 1 reads every float, 0 is read as 1), with the instruction set of `k`.
pub fn read_sum(k: &Kernels, data: &[f32], stride: usize) -> f32 {
    match k.isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        Isa::Sse => unsafe { super::x86::sse::read_sum(data, stride) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { super::x86::avx2::read_sum(data, stride) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512 => unsafe { super::x86::avx512::read_sum(data, stride) },
        _ => scalar_read_sum(data, stride),
    }
}
// ANCHOR_END: read_sum

/// Bytes [`read_sum`] loads from `len` floats with vectors of `lanes` floats and `stride`.
pub fn bytes_read(len: usize, lanes: usize, stride: usize) -> usize {
    let step = stride.max(1) * lanes;
    let loads = if len < lanes { 0 } else { (len - lanes) / step + 1 };
    let tail = if stride <= 1 { len - loads * lanes } else { 0 };
    4 * (loads * lanes + tail)
}

/// The scalar version: eight independent sums of one float every `stride`.
fn scalar_read_sum(data: &[f32], stride: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut picked = data.iter().step_by(stride.max(1));
    loop {
        for a in acc.iter_mut() {
            match picked.next() {
                Some(&x) => *a += x,
                None => return acc.iter().sum(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    /// Every instruction set adds exactly the floats it claims to read, no more, no fewer: the
    /// floats are small integers (every sum is exact in f32), and the expected sum is worked
    /// out one load at a time.
    #[test]
    fn read_sum_adds_the_floats_it_counts() {
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            let lanes = isa.lanes();
            for len in [0, 1, 3, 15, 16, 17, 33, 100, 257, 1000] {
                let data: Vec<f32> = (0..len).map(|i| (i % 97) as f32 + 1.0).collect();
                for stride in [0, 1, 2, 3, 8] {
                    let step = stride.max(1) * lanes;
                    let mut want = 0.0f64;
                    let mut count = 0;
                    let mut start = 0;
                    while start + lanes <= len {
                        want += data[start..start + lanes].iter().map(|&x| f64::from(x)).sum::<f64>();
                        count += lanes;
                        start += step;
                    }
                    if stride <= 1 {
                        want += data[count..].iter().map(|&x| f64::from(x)).sum::<f64>();
                        count = len;
                    }
                    let got = read_sum(k, &data, stride);
                    assert_eq!(f64::from(got), want, "{isa}: {len} floats, stride {stride}");
                    assert_eq!(bytes_read(len, lanes, stride), 4 * count, "{isa}: bytes of {len}, stride {stride}");
                }
            }
        }
    }
}
