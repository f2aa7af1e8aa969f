//! Chapter 7: the convolution as im2col and a matrix product, blocked for the caches the way
//! BLIS (Goto's algorithm) blocks a matrix product, with one micro-kernel written once over
//! [`SimdF32`].
//!
//! `scalar::im2col` turns one image into `A [h*w, K]` with `K = 9*c_in`; the weights are
//! `B [K, c_out]` and the output `C [h*w, c_out]`. BLIS packs both operands before it
//! multiplies, so that its micro-kernel reads each as one contiguous stream whatever the
//! matrices' strides. B is packed here, into panels of `NR` columns. A is not: it is a copy
//! we have just made, its rows are contiguous, and a second copy into micro-panels cost more
//! than it saved (chapter 7 reports by how much). The micro-kernel broadcasts from `MR` rows of A
//! side by side instead, `MR` streams that each run forward.
//!
//! ```text
//! pack B once per call: panels of NR = NV*LANES columns, each K rows of NR floats
//! for each image:
//!     im2col -> A
//!     for each block of KC rows of B (pc):         a panel's block, KC x NR, stays in L1
//!         for each block of MC rows of A (ic):     MC x KC of A, in L2 after its first use
//!             for each panel of B (jr):
//!                 for each MR rows of the block (ir):
//!                     MR x NR sums in registers += A[MR rows, KC] x panel's block
//! ```
//!
//! The micro-kernel is the whole computation: `MR * NV` accumulators, and at each of the KC
//! steps `NV` loads of B, `MR` broadcasts of A and `MR * NV` multiply-adds.
//!
//! The weight gradient is a product too, `grad_weight [K, c_out] = A^T G` with `G` the output
//! gradient `[h*w, c_out]`, summed over the images: the same micro-kernel, reading `A` by columns
//! (`MR` neighbouring floats of one row of `A` per step) and `G` in place (or from a copy padded
//! to whole panels when `c_out` is not a multiple of `NR`), its sum running over the pixels in
//! blocks of `KC`.
//!
//! The input gradient is the forward product run backwards: `D [h*w, K] = G B^T`, the forward
//! pass's product with `G` in the place of `A` and the weights turned into `B^T [c_out, K]`,
//! then `scalar::col2im` adds each row of `D` back to the nine input pixels its window read.

use crate::kernels::Conv2dShape;
use crate::kernels::scalar::{col2im, im2col};
use crate::kernels::simd::SimdF32;
use crate::tensor::AlignedVec;
use std::cell::RefCell;

// ANCHOR: blocking
/// Steps of the micro-kernel per block. In the forward pass, rows of B and columns of A: a
/// panel's block is `KC * NR` floats (16 KB with AVX-512's 32 columns), which stays in the L1
/// while the micro-kernel runs down every `MR` rows of A's block. In the weight gradient,
/// pixels: rows of A and of G. In the input gradient, output channels: columns of G, rows of
/// `B^T`.
const KC: usize = 128;
/// Rows of A per block: `MC * KC` floats of A (96 KB), which stay in the L2 while every panel
/// of B passes over them. A multiple of every tile's MR (12, 6 and 4).
const MC: usize = 192;
// ANCHOR_END: blocking

thread_local! {
    /// One image's `A` (for the input gradient, its `D` and a copy of its `G`), kept by each
    /// thread from call to call: conv2's `A` is 4.7 MB, and a new allocation per call would
    /// make the page faults of fresh memory part of every timing.
    static COLS: RefCell<AlignedVec> = RefCell::new(AlignedVec::zeros(0));
}

// ANCHOR: conv2d_forward_im2col
/// `output = conv(input, weight) + bias` (then ReLU if `relu`), by im2col and a matrix product
/// with an `MR x NV`-vector micro-kernel.
#[inline(always)]
pub(crate) fn conv2d_forward_im2col<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    relu: bool,
) {
    shape.check_forward(input, weight, bias, output);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let (m, k) = (h * w, 9 * c_in);
    if output.is_empty() {
        return;
    }
    if k == 0 {
        // No input channel: every output is its bias.
        for pixel in output.chunks_exact_mut(c_out) {
            pixel.iter_mut().zip(bias).for_each(|(o, &b)| *o = if relu { b.max(0.0) } else { b });
        }
        return;
    }
    let nr = NV * S::LANES;
    let panels = c_out.div_ceil(nr);
    let packed_b = pack_b(weight, k, c_out, nr);
    let mut bias_p = AlignedVec::zeros(panels * nr);
    bias_p[..c_out].copy_from_slice(bias);
    let mut edge = AlignedVec::zeros(MR * nr);
    // The rows past the last pixel, which the last micro-tile reads, are zero.
    let len = m.div_ceil(MR) * MR * k;
    let mut cols = take_cols(m * k, len);
    let a = &mut cols[..len];
    for img in 0..n {
        im2col(shape, &input[img * m * c_in..][..m * c_in], &mut a[..m * k]);
        let c = &mut output[img * m * c_out..][..m * c_out];
        let product = Product { m, k, n: c_out, nr, relu };
        product.run::<S, MR, NV>(s, a, &packed_b, &bias_p, c, &mut edge);
    }
    COLS.with(|slot| slot.replace(cols));
}
// ANCHOR_END: conv2d_forward_im2col

// ANCHOR: backward_weight_im2col
/// `grad_weight = sum over images of A^T G` and `grad_bias = sum of G's rows`, overwriting both:
/// the weight gradient as one matrix product per image, `[K, h*w] x [h*w, c_out]`, whose sum
/// runs over the image's pixels. `A^T`'s rows are `A`'s columns, so the micro-kernel reads
/// `MR` neighbouring floats of one row of `A` at each step (`AT`).
#[inline(always)]
pub(crate) fn conv2d_backward_weight_im2col<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    shape.check_backward_weight(input, grad_output, grad_weight, grad_bias);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let (m, k) = (h * w, 9 * c_in);
    let nr = NV * S::LANES;
    grad_weight.fill(0.0);
    grad_bias.fill(0.0);
    if grad_output.is_empty() {
        return; // no pixel or no output channel: nothing to sum
    }
    let mut edge = AlignedVec::zeros(MR * nr);
    // G's rows are read in place when c_out is a whole number of panels, else from a copy
    // padded to one.
    let ldb = c_out.next_multiple_of(nr);
    let mut padded = AlignedVec::zeros(if ldb == c_out { 0 } else { m * ldb });
    // The last rows of A^T read up to MR - 1 floats past the end of A (into rows of C that are
    // not kept): they are there, and zero.
    let len = m * k + MR;
    let mut cols = take_cols(m * k, len);
    let a = &mut cols[..len];
    for img in 0..n {
        im2col(shape, &input[img * m * c_in..][..m * c_in], &mut a[..m * k]);
        let mut g = &grad_output[img * m * c_out..][..m * c_out];
        for row in g.chunks_exact(c_out) {
            grad_bias.iter_mut().zip(row).for_each(|(b, &v)| *b += v);
        }
        if ldb != c_out {
            for (dst, src) in padded.chunks_exact_mut(ldb).zip(g.chunks_exact(c_out)) {
                dst[..c_out].copy_from_slice(src);
            }
            g = &padded;
        }
        for pc in (0..m).step_by(KC) {
            let kc = KC.min(m - pc);
            for row in (0..k).step_by(MR) {
                for col in (0..c_out).step_by(nr) {
                    // Pixels pc..pc+kc: columns row..row+MR of A's rows, columns col..col+nr
                    // of G's.
                    let steps = Steps { kc, a: &a[pc * k + row..], lda: k, b: &g[pc * ldb + col..], ldb };
                    let t = Tile { row, col, rows: MR.min(k - row), cols: nr.min(c_out - col) };
                    tile::<S, MR, NV, true>(s, steps, None, grad_weight, c_out, t, false, &mut edge);
                }
            }
        }
    }
    COLS.with(|slot| slot.replace(cols));
}
// ANCHOR_END: backward_weight_im2col

// ANCHOR: backward_input_im2col
/// `grad_input = col2im(G B^T)`, overwriting `grad_input`: per image, the forward pass's
/// product with the output gradient `G [h*w, c_out]` as `A` and the turned weights
/// `B^T [c_out, K]` as `B`, into `D [h*w, K]`, whose rows [`col2im`] adds back to the input
/// pixels they came from.
#[inline(always)]
pub(crate) fn conv2d_backward_input_im2col<S: SimdF32, const MR: usize, const NV: usize>(
    s: S,
    shape: &Conv2dShape,
    grad_output: &[f32],
    weight: &[f32],
    grad_input: &mut [f32],
) {
    shape.check_backward_input(grad_output, weight, grad_input);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let (m, k) = (h * w, 9 * c_in);
    grad_input.fill(0.0);
    if grad_input.is_empty() || c_out == 0 {
        return; // no input value, or no output channel to take a gradient from
    }
    let nr = NV * S::LANES;
    let panels = k.div_ceil(nr);
    // B^T [c_out, K]: row co holds every weight that multiplied into output channel co.
    let mut turned = vec![0.0; c_out * k];
    for (i, row) in weight.chunks_exact(c_out).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            turned[co * k + i] = v;
        }
    }
    let packed_b = pack_b(&turned, c_out, k, nr);
    let zero_bias = AlignedVec::zeros(panels * nr);
    let mut edge = AlignedVec::zeros(MR * nr);
    // One buffer: D, then the image's G with zero rows after it up to a whole number of MR.
    let g_len = m.div_ceil(MR) * MR * c_out;
    let mut cols = take_cols(m * k + m * c_out, m * k + g_len);
    let (d, g) = cols[..m * k + g_len].split_at_mut(m * k);
    for img in 0..n {
        g[..m * c_out].copy_from_slice(&grad_output[img * m * c_out..][..m * c_out]);
        let product = Product { m, k: c_out, n: k, nr, relu: false };
        product.run::<S, MR, NV>(s, g, &packed_b, &zero_bias, d, &mut edge);
        col2im(shape, d, &mut grad_input[img * m * c_in..][..m * c_in]);
    }
    COLS.with(|slot| slot.replace(cols));
}
// ANCHOR_END: backward_input_im2col

/// This thread's buffer for `A` (or `D` and `G`), at least `len` floats, of which those from `used` to `len` are
/// zero; the caller puts it back into `COLS`.
/// It is taken out of the thread's slot, and put back by the caller, rather than used inside
/// `COLS.with`. A closure is a function of its own, with the instruction sets of the function it
/// is written in, and the passes have none of their own: they get AVX-512 by being inlined into a
/// `#[target_feature]` wrapper. A closure as large as a whole product is not inlined, and every
/// vector method in it would be a call (AVX-512 ran at 2.2 GFLOP/s that way).
fn take_cols(used: usize, len: usize) -> AlignedVec {
    let mut cols = COLS.with(RefCell::take);
    if cols.len() < len {
        cols = AlignedVec::zeros(len);
    }
    cols[used..len].fill(0.0);
    cols
}

/// B `[k, n]` as panels of `nr` columns, each `[k][nr]` and zero-padded past `n`.
fn pack_b(b: &[f32], k: usize, n: usize, nr: usize) -> AlignedVec {
    let panels = n.div_ceil(nr);
    let mut packed = AlignedVec::zeros(panels * k * nr);
    for (row, b_row) in b.chunks_exact(n).enumerate() {
        for (panel, cols) in b_row.chunks(nr).enumerate() {
            packed[(panel * k + row) * nr..][..cols.len()].copy_from_slice(cols);
        }
    }
    packed
}

/// The sizes of one image's product in the forward pass, `C [m, n] = A [m, k] B [k, n]`.
#[derive(Clone, Copy)]
struct Product {
    m: usize,
    k: usize,
    n: usize,
    nr: usize,
    relu: bool,
}

impl Product {
    // ANCHOR: gemm_loops
    /// `c = a packed_b + bias_p`, ReLU'd if asked, through the blocks of the module's sketch;
    /// `a` has zero rows after its `m`, up to a whole number of `MR`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run<S: SimdF32, const MR: usize, const NV: usize>(
        self,
        s: S,
        a: &[f32],
        packed_b: &[f32],
        bias_p: &[f32],
        c: &mut [f32],
        edge: &mut [f32],
    ) {
        // Every block of rows starts on a tile, so no tile crosses into the next block.
        const { assert!(MC.is_multiple_of(MR)) };
        let Product { m, k, n, nr, relu } = self;
        assert!(a.len() == m.div_ceil(MR) * MR * k && c.len() == m * n && nr == NV * S::LANES);
        assert!(packed_b.len() == n.div_ceil(nr) * k * nr && bias_p.len() == n.div_ceil(nr) * nr);
        assert!(edge.len() >= MR * nr);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let (first, last) = (pc == 0, pc + kc == k);
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                for (panel, col) in (0..n).step_by(nr).enumerate() {
                    let b = &packed_b[(panel * k + pc) * nr..][..kc * nr];
                    let bias = first.then(|| &bias_p[col..col + nr]);
                    for row in (ic..ic + mc).step_by(MR) {
                        // Columns pc..pc+kc of rows row..row+MR of A.
                        let steps = Steps { kc, a: &a[row * k + pc..], lda: k, b, ldb: nr };
                        let t = Tile { row, col, rows: MR.min(m - row), cols: nr.min(n - col) };
                        tile::<S, MR, NV, false>(s, steps, bias, c, n, t, relu && last, edge);
                    }
                }
            }
        }
    }
    // ANCHOR_END: gemm_loops
}

/// One `MR x nr` tile of C (`ldc` floats a row) at `(t.row, t.col)`, of which `t.rows x t.cols`
/// are inside C: computed in place when it is whole, else in `edge` and copied.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: SimdF32, const MR: usize, const NV: usize, const AT: bool>(
    s: S,
    steps: Steps,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
    t: Tile,
    relu: bool,
    edge: &mut [f32],
) {
    let Steps { kc, a, lda, b, ldb } = steps;
    let nr = NV * S::LANES;
    // What the micro-kernel reads, and the bias's nr floats.
    assert!(kc > 0);
    let a_extent = if AT { (kc - 1) * lda + MR } else { (MR - 1) * lda + kc };
    assert!(a.len() >= a_extent && b.len() >= (kc - 1) * ldb + nr);
    assert!(bias.is_none_or(|bias| bias.len() == nr));
    if t.rows == MR && t.cols == nr {
        let c = &mut c[t.row * ldc + t.col..][..(MR - 1) * ldc + nr];
        // SAFETY: `a`, `b` and `bias` hold what the micro-kernel reads (asserted above); the
        // tile's MR rows of nr floats at stride ldc are inside `c` (sliced to their extent).
        unsafe { micro_kernel::<S, MR, NV, AT>(s, steps, bias, c.as_mut_ptr(), ldc, relu) }
    } else {
        // A tile past the last row or column of C: the same micro-kernel on a whole tile in
        // `edge`, which starts as the part of C that exists, and of which that part is kept.
        let edge = &mut edge[..MR * nr];
        if bias.is_none() {
            for r in 0..t.rows {
                edge[r * nr..][..t.cols].copy_from_slice(&c[(t.row + r) * ldc + t.col..][..t.cols]);
            }
        }
        // SAFETY: as above, with the MR rows of nr floats at stride nr that `edge` holds.
        unsafe { micro_kernel::<S, MR, NV, AT>(s, steps, bias, edge.as_mut_ptr(), nr, relu) }
        for r in 0..t.rows {
            c[(t.row + r) * ldc + t.col..][..t.cols].copy_from_slice(&edge[r * nr..][..t.cols]);
        }
    }
}

/// Where a tile of C starts, and how much of it is inside C.
#[derive(Clone, Copy)]
struct Tile {
    row: usize,
    col: usize,
    rows: usize,
    cols: usize,
}

// ANCHOR: micro_kernel
/// What a tile's micro-kernel reads: `kc` steps of `A` (`MR` rows of `kc` floats at a stride of
/// `lda`, or with `AT` the transpose: `kc` rows of `MR` floats at a stride of `lda`) and of `B`
/// (`kc` rows of `NV` vectors at a stride of `ldb`).
#[derive(Clone, Copy)]
struct Steps<'a> {
    kc: usize,
    a: &'a [f32],
    lda: usize,
    b: &'a [f32],
    ldb: usize,
}

/// `C[MR x NV vectors] = (bias, or C when there is none) + A B` over `kc` steps, then
/// `max(C, 0)` if `relu`. With `AT`, `A` is stored transposed (the weight gradient's `A^T G`).
///
/// # Safety
/// `steps.a` and `steps.b` hold what [`Steps`] says the `kc` steps read, `c` is valid for `MR`
/// rows of `NV` vectors at a stride of `ldc` floats, and `bias`, when given, holds `NV` vectors.
#[inline(always)]
unsafe fn micro_kernel<S: SimdF32, const MR: usize, const NV: usize, const AT: bool>(
    s: S,
    steps: Steps,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
    relu: bool,
) {
    let l = S::LANES;
    let Steps { kc, lda, ldb, .. } = steps;
    let (a, b) = (steps.a.as_ptr(), steps.b.as_ptr());
    // Where value (i, p) of the tile's A is: row i, step p.
    let (row_stride, step_stride) = if AT { (1, lda) } else { (lda, 1) };
    // SAFETY: every pointer below stays inside the extents the caller guarantees.
    unsafe {
        // Plain loops, no `std::array::from_fn`: its closure gets no instruction set of its own
        // (see `conv2d_forward_im2col`), and one that loaded C was left a call in a profile.
        let mut acc = [[s.zero(); NV]; MR];
        for i in 0..MR {
            for j in 0..NV {
                acc[i][j] = match bias {
                    Some(bias) => s.load(bias.as_ptr().add(j * l)),
                    None => s.load(c.add(i * ldc + j * l)),
                };
            }
        }
        for p in 0..kc {
            let mut bv = [s.zero(); NV];
            for j in 0..NV {
                bv[j] = s.load(b.add(p * ldb + j * l));
            }
            for i in 0..MR {
                let ai = s.splat(*a.add(i * row_stride + p * step_stride));
                for j in 0..NV {
                    acc[i][j] = s.mul_add(ai, bv[j], acc[i][j]);
                }
            }
        }
        let floor = if relu { s.zero() } else { s.splat(f32::NEG_INFINITY) };
        for i in 0..MR {
            for j in 0..NV {
                s.store(c.add(i * ldc + j * l), s.max(floor, acc[i][j]));
            }
        }
    }
}
// ANCHOR_END: micro_kernel
