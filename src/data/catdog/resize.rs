//! Resizing an RGB image with PIL's bilinear filter, to the byte.
//!
//! The PyTorch reference prepares its data with Pillow's `Image.resize(size, BILINEAR)`. Doing
//! exactly what Pillow does (the same filter, the same fixed-point arithmetic, the same order of
//! passes) means a photo decoded to the same RGB bytes gives the same 128x128 bytes here and
//! there, and it is several times faster than the `image` crate's generic floating-point resize.
//!
//! A resize is two passes of one idea. Along one axis, output pixel `o` covers the input
//! interval centred on `c = (o + 0.5) * scale`, where `scale = in_len / out_len`. Its value is a
//! weighted mean of the input pixels near `c`, with the weights of a triangle (a "tent") centred
//! on `c`: `w(i) = max(0, 1 - |i + 0.5 - c| / s)`, where `s = max(scale, 1)`. When shrinking,
//! `s = scale` widens the tent so that every input pixel counts (without it, shrinking would skip
//! pixels and alias); when enlarging, `s = 1` is plain linear interpolation.

/// Fractional bits of the fixed-point weights (Pillow's `PRECISION_BITS`): 32 - 8 - 2, so that
/// 255 times a sum of weights near 1 fits an `i32`.
const PRECISION_BITS: u32 = 22;
/// Added before the final shift so that it rounds to nearest.
///
/// The sums cannot overflow (255 times weights that add up to `2^22` plus a rounding error of at
/// most one half per tap stays below `2^31`), so the passes use `wrapping_add` and
/// `wrapping_mul`: they give the same results, and unlike `+` and `*` in a build with overflow
/// checks (this crate's dev profile), they let the compiler turn the loops into SIMD code.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

// ANCHOR: coefficients
/// For each of the `out_len` output pixels of one axis, the first input pixel it reads and the
/// fixed-point weights of that pixel and the ones after it. The weights of a pixel sum to
/// `2^22` (up to rounding).
fn triangle_coefficients(in_len: usize, out_len: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_len as f64 / out_len as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the tent reaches this far each side of its centre
    let tent = |x: f64| (1.0 - x.abs()).max(0.0);
    (0..out_len)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // `as isize` truncates toward zero, like the C `(int)` cast in Pillow.
            let first = ((center - support + 0.5) as isize).max(0) as usize;
            let end = ((center + support + 0.5) as isize).min(in_len as isize) as usize;
            let weights: Vec<f64> =
                (first..end).map(|i| tent((i as f64 - center + 0.5) * (1.0 / filter_scale))).collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights.iter().map(|w| (0.5 + w / total * f64::from(1 << PRECISION_BITS)) as i32).collect();
            (first, fixed)
        })
        .collect()
}
// ANCHOR_END: coefficients

/// A fixed-point sum back to a byte: round, then clamp to 0..=255.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

// ANCHOR: resize_rgb
/// Resizes the `[height, width, 3]` image `src` to `[out_height, out_width, 3]` in two passes,
/// each rounding to bytes: along the rows, then along the columns; or the other way round when
/// the height shrinks by more than twice as many pixels as the width, because then the second
/// pass has fewer rows to work on (the choice Pillow 13 makes; older versions always went along
/// the rows first, which changes a few pixels by one level).
pub fn resize_rgb(src: &[u8], width: usize, height: usize, out_width: usize, out_height: usize) -> Vec<u8> {
    assert_eq!(src.len(), width * height * 3, "src is [height, width, 3]");
    let shrink_height = height as isize - out_height as isize;
    let shrink_width = width as isize - out_width as isize;
    if shrink_height > 0 && shrink_height > 2 * shrink_width {
        let down = resize_columns(src, width, height, out_height);
        resize_rows(&down, width, out_height, out_width)
    } else {
        let across = resize_rows(src, width, height, out_width);
        resize_columns(&across, out_width, height, out_height)
    }
}
// ANCHOR_END: resize_rgb

// ANCHOR: resize_passes
/// `[height, width, 3]` to `[height, out_width, 3]`: output pixel `o` of a row is the weighted sum
/// of the pixels `first..` of the same row, channel by channel.
fn resize_rows(src: &[u8], width: usize, height: usize, out_width: usize) -> Vec<u8> {
    if out_width == width {
        return src.to_vec();
    }
    let columns = triangle_coefficients(width, out_width);
    let mut out = vec![0u8; height * out_width * 3];
    for (row, out_row) in src.chunks_exact(width * 3).zip(out.chunks_exact_mut(out_width * 3)) {
        for ((first, weights), out_pixel) in columns.iter().zip(out_row.chunks_exact_mut(3)) {
            let mut sum = [HALF; 3];
            for (pixel, &w) in row[first * 3..].chunks_exact(3).zip(weights) {
                for c in 0..3 {
                    sum[c] = sum[c].wrapping_add(w.wrapping_mul(i32::from(pixel[c])));
                }
            }
            for c in 0..3 {
                out_pixel[c] = clip8(sum[c]);
            }
        }
    }
    out
}

/// `[height, width, 3]` to `[out_height, width, 3]`: output row `o` is the weighted sum of the
/// rows `first..`, byte by byte; one row of sums at a time, a loop the compiler vectorises.
fn resize_columns(src: &[u8], width: usize, height: usize, out_height: usize) -> Vec<u8> {
    if out_height == height {
        return src.to_vec();
    }
    let rows = triangle_coefficients(height, out_height);
    let row_len = width * 3;
    let mut out = vec![0u8; out_height * row_len];
    let mut sums = vec![0i32; row_len];
    for ((first, weights), out_row) in rows.iter().zip(out.chunks_exact_mut(row_len)) {
        sums.fill(HALF);
        for (row, &w) in src[first * row_len..].chunks_exact(row_len).zip(weights) {
            for (sum, &p) in sums.iter_mut().zip(row) {
                *sum = sum.wrapping_add(w.wrapping_mul(i32::from(p)));
            }
        }
        for (o, &sum) in out_row.iter_mut().zip(&sums) {
            *o = clip8(sum);
        }
    }
    out
}
// ANCHOR_END: resize_passes
