//! Chapter 11: the products of int8 inference, in integers.
//!
//! A quantised layer multiplies unsigned bytes (its input: activations after a ReLU are never
//! negative, so all 256 codes are used) by signed bytes (its weights) and sums the products in
//! 32-bit integers, which is exact: no rounding happens until the sums are turned back into
//! activations. AVX-512 VNNI's `vpdpbusd` does 64 such products per instruction, four per 32-bit
//! lane summed into it, against the 16 of an fp32 FMA.
//!
//! One op serves both kinds of layer. An [`Int8Shape`] is a k x k convolution (stride 1, padding
//! k / 2) of `n` NHWC maps of `h` x `w`; a fully connected layer is the same op with `k = 1` on
//! maps of 1 x 1 pixel, its `n` rows being the pixels. The input is stored with its padding
//! border of zeros already in place and its channels padded to `in_stride` (a multiple of 4, one
//! `vpdpbusd` group); the output has `out_stride` channels (`c_out` rounded up to 16, one vector),
//! the extra ones zero.
//!
//! Each output channel `c` of a sum `acc` becomes `y = acc * scale[c] + bias[c]` (one fused
//! multiply-add in f32), then either an unsigned byte, `min(round(max(y, 0)), 255)` (a ReLU and
//! the next layer's quantisation in one; ties to even, as `vcvtps2dq` rounds), or the f32 `y`
//! itself for the last layer. The scalar kernel here is the oracle the VNNI kernel must match
//! bit for bit.

use super::isa::{Isa, IsaError};

/// Bytes `vpdpbusd` sums into one 32-bit lane: input channels come in groups of this many.
pub const GROUP: usize = 4;

/// 32-bit sums in one AVX-512 vector: output channels come in blocks of this many.
pub const LANES: usize = 16;

/// The geometry of one int8 product (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// The kernel's side: 3 for the book's convolutions, 1 for a fully connected layer.
    pub k: usize,
    pub c_in: usize,
    /// Bytes from one input pixel to the next: `c_in` or more, a multiple of [`GROUP`].
    pub in_stride: usize,
    pub c_out: usize,
}

impl Int8Shape {
    /// The padding on each side, `k / 2`.
    pub fn pad(&self) -> usize {
        self.k / 2
    }

    /// Channels per output pixel: `c_out` rounded up to a multiple of [`LANES`].
    pub fn out_stride(&self) -> usize {
        self.c_out.next_multiple_of(LANES)
    }

    /// Bytes of the padded input, `n * (h + 2p) * (w + 2p) * in_stride`.
    ///
    /// # Panics
    /// If that overflows `usize` (a shape no memory could hold).
    pub fn input_len(&self) -> usize {
        let p = 2 * self.pad();
        [self.n, self.h + p, self.w + p, self.in_stride]
            .into_iter()
            .try_fold(1usize, usize::checked_mul)
            .expect("the input of this shape is larger than memory")
    }

    /// Values of the output, `n * h * w * out_stride`.
    ///
    /// # Panics
    /// If that overflows `usize`.
    pub fn output_len(&self) -> usize {
        [self.n, self.h, self.w, self.out_stride()]
            .into_iter()
            .try_fold(1usize, usize::checked_mul)
            .expect("the output of this shape is larger than memory")
    }

    /// Multiply-adds the product does (the real channels only).
    pub fn macs(&self) -> u64 {
        (self.n * self.h * self.w * self.k * self.k * self.c_in * self.c_out) as u64
    }
}

/// What a product's sums become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Output {
    /// `min(round(max(y, 0)), 255)`: the ReLU and the next layer's quantisation.
    U8,
    /// `y`: the last layer's logits.
    F32,
}

// ANCHOR: int8_layer
/// A quantised layer: its weights as signed bytes, in the order the scalar oracle reads them and
/// packed for `vpdpbusd`, and the per-channel scale and bias that turn its sums into outputs.
#[derive(Clone, Debug)]
pub struct Int8Layer {
    k: usize,
    c_in: usize,
    in_stride: usize,
    c_out: usize,
    /// `[k * k][c_in][c_out]`: HWIO, as the fp32 convolutions store theirs.
    hwio: Vec<i8>,
    /// Blocks of `vectors` x 16 output channels, each `[k * k][in_stride / 4][vectors][16][4]`:
    /// one 64-byte load gives 16 channels' weights for 4 input channels, the layout of
    /// `vpdpbusd`'s signed operand.
    packed: Vec<i8>,
    /// `(first vector, vectors, offset into packed)` of each block.
    blocks: Vec<(usize, usize, usize)>,
    scale: Vec<f32>,
    bias: Vec<f32>,
    output: Int8Output,
}
// ANCHOR_END: int8_layer

/// Why an int8 layer or kernel table cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    #[error("int8 kernels exist for scalar and avx512 (with VNNI), not {isa}")]
    NoKernels { isa: Isa },
    #[error("int8 with avx512: {0}")]
    Avx512(IsaError),
    #[error("this CPU has no AVX-512 VNNI (vpdpbusd): int8 runs only on the scalar kernels here")]
    NoVnni,
    #[error("int8 layer: {0}")]
    Layer(String),
}

impl Int8Layer {
    /// A layer from its weights `hwio` (`[k * k][c_in][c_out]`), the per-output-channel `scale`
    /// and `bias` (`c_out` each; the padded channels get zeros) and what it outputs.
    pub fn new(
        k: usize,
        c_in: usize,
        in_stride: usize,
        c_out: usize,
        hwio: Vec<i8>,
        scale: &[f32],
        bias: &[f32],
        output: Int8Output,
    ) -> Result<Int8Layer, Int8Error> {
        let bad = |what: String| Err(Int8Error::Layer(what));
        if k.is_multiple_of(2) || c_in == 0 || c_out == 0 {
            return bad(format!("a {k}x{k} kernel from {c_in} to {c_out} channels"));
        }
        if in_stride < c_in || !in_stride.is_multiple_of(GROUP) {
            return bad(format!(
                "an input stride of {in_stride} bytes for {c_in} channels (a multiple of 4 is needed)"
            ));
        }
        if hwio.len() != k * k * c_in * c_out || scale.len() != c_out || bias.len() != c_out {
            return bad(format!(
                "{} weights, {} scales and {} biases for a {k}x{k} kernel from {c_in} to {c_out} channels",
                hwio.len(),
                scale.len(),
                bias.len()
            ));
        }
        // The largest sum, 255 x 128 per product, must fit an i32.
        if (k * k * c_in) as u128 * 255 * 128 > i32::MAX as u128 {
            return bad(format!("{} products per sum could overflow its 32 bits", k * k * c_in));
        }
        if let Some(v) = scale.iter().chain(bias).find(|v| !v.is_finite()) {
            return bad(format!("a scale or bias of {v}"));
        }
        let out_stride = c_out.next_multiple_of(LANES);
        let padded = |v: &[f32]| {
            let mut p = v.to_vec();
            p.resize(out_stride, 0.0);
            p
        };
        let (scale, bias) = (padded(scale), padded(bias));
        let mut layer =
            Int8Layer { k, c_in, in_stride, c_out, hwio, packed: Vec::new(), blocks: Vec::new(), scale, bias, output };
        layer.pack();
        Ok(layer)
    }

    // ANCHOR: pack
    /// Packs the weights for `vpdpbusd`: blocks of 4 vectors (64 output channels), then one of
    /// 2 and one of 1 for what is left; the padded input and output channels get zeros.
    fn pack(&mut self) {
        let vectors = self.c_out.div_ceil(LANES);
        let groups = self.in_stride / GROUP;
        let mut v0 = 0;
        while v0 < vectors {
            let block = [4, 2, 1].into_iter().find(|&b| b <= vectors - v0).expect("1 always fits");
            self.blocks.push((v0, block, self.packed.len()));
            for tap in 0..self.k * self.k {
                for g in 0..groups {
                    for v in v0..v0 + block {
                        for lane in 0..LANES {
                            for j in 0..GROUP {
                                let (ci, co) = (g * GROUP + j, v * LANES + lane);
                                let w = if ci < self.c_in && co < self.c_out {
                                    self.hwio[(tap * self.c_in + ci) * self.c_out + co]
                                } else {
                                    0
                                };
                                self.packed.push(w);
                            }
                        }
                    }
                }
            }
            v0 += block;
        }
    }
    // ANCHOR_END: pack

    /// The shape of this layer on `n` maps of `h` x `w`.
    pub fn shape(&self, n: usize, h: usize, w: usize) -> Int8Shape {
        Int8Shape { n, h, w, k: self.k, c_in: self.c_in, in_stride: self.in_stride, c_out: self.c_out }
    }

    pub fn output(&self) -> Int8Output {
        self.output
    }

    // The four views below are read by the VNNI kernels, which exist only on x86-64.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn packed(&self) -> &[i8] {
        &self.packed
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn blocks(&self) -> &[(usize, usize, usize)] {
        &self.blocks
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn scale(&self) -> &[f32] {
        &self.scale
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn bias(&self) -> &[f32] {
        &self.bias
    }
}

/// Where a product writes: bytes for [`Int8Output::U8`], floats for [`Int8Output::F32`].
pub enum Int8Out<'a> {
    U8(&'a mut [u8]),
    F32(&'a mut [f32]),
}

// ANCHOR: epilogue
/// One output value from one sum, as every int8 kernel must compute it.
#[inline(always)]
pub fn requantize_u8(acc: i32, scale: f32, bias: f32) -> u8 {
    let q = (acc as f32).mul_add(scale, bias).max(0.0).round_ties_even();
    // Above 255 (or beyond i32, where `vcvtps2dq` gives its "indefinite" value, which the
    // unsigned saturation of `vpmovusdb` also turns into 255).
    if q >= 255.0 { 255 } else { q as u8 }
}

/// The last layer's output value from one sum.
#[inline(always)]
pub fn requantize_f32(acc: i32, scale: f32, bias: f32) -> f32 {
    (acc as f32).mul_add(scale, bias)
}
// ANCHOR_END: epilogue

type ProductFn = unsafe fn(&Int8Layer, &Int8Shape, &[u8], Int8Out<'_>);
type PeakFn = unsafe fn(u64, i32, i32) -> i32;

/// The int8 ops of one instruction set. Like [`super::Kernels`], a value exists only where it
/// can run: [`Int8Kernels::for_isa`] checks first.
pub struct Int8Kernels {
    isa: Isa,
    product: ProductFn,
    /// The loop of `vpdpbusd` that measures the int8 peak, and its operations per iteration.
    peak: Option<(PeakFn, u64)>,
}

static SCALAR: Int8Kernels = Int8Kernels { isa: Isa::Scalar, product: product_scalar, peak: None };

#[cfg(target_arch = "x86_64")]
static VNNI: Int8Kernels = {
    use super::x86::avx512::int8::{OPS_PER_ITERATION, peak, product};
    Int8Kernels { isa: Isa::Avx512, product, peak: Some((peak, OPS_PER_ITERATION)) }
};

/// Whether the CPU has AVX-512 VNNI.
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Int8Kernels {
    /// The int8 table for `isa` (scalar, or avx512 with VNNI), or why it cannot run here.
    pub fn for_isa(isa: Isa) -> Result<&'static Int8Kernels, Int8Error> {
        match isa {
            Isa::Scalar => Ok(&SCALAR),
            Isa::Avx512 => {
                isa.check().map_err(Int8Error::Avx512)?;
                if !cpu_has_vnni() {
                    return Err(Int8Error::NoVnni);
                }
                #[cfg(target_arch = "x86_64")]
                return Ok(&VNNI);
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("Isa::check passed, so the avx512 kernels are compiled in")
            }
            _ => Err(Int8Error::NoKernels { isa }),
        }
    }

    /// VNNI where it can run (within `SIMD_CNN_MAX_ISA`), else the scalar kernels.
    pub fn best() -> &'static Int8Kernels {
        Int8Kernels::for_isa(Isa::Avx512).unwrap_or(&SCALAR)
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    // ANCHOR: product
    /// Runs `layer` on `input` (padded, `shape.input_len()` bytes) into `out`
    /// (`shape.output_len()` values of the layer's output type).
    ///
    /// # Panics
    /// If the shape is not the layer's, a length is wrong, or `out` is not of the layer's type.
    pub fn product(&self, layer: &Int8Layer, shape: &Int8Shape, input: &[u8], out: Int8Out<'_>) {
        assert_eq!(*shape, layer.shape(shape.n, shape.h, shape.w), "the shape is not the layer's");
        assert_eq!(input.len(), shape.input_len(), "input length");
        let out_len = match (&out, layer.output) {
            (Int8Out::U8(o), Int8Output::U8) => o.len(),
            (Int8Out::F32(o), Int8Output::F32) => o.len(),
            _ => panic!("the output buffer is not of the layer's type"),
        };
        assert_eq!(out_len, shape.output_len(), "output length");
        if out_len == 0 {
            return;
        }
        // SAFETY: the table exists only where its instructions run (`for_isa` checked), and the
        // lengths the kernels rely on were checked above.
        unsafe { (self.product)(layer, shape, input, out) }
    }
    // ANCHOR_END: product

    /// `iterations` of the peak loop (12 chains of `vpdpbusd`): its integer operations (a
    /// multiply and an add per product) and its result; `None` for the scalar table.
    pub fn peak(&self, iterations: u64, a: i32, b: i32) -> Option<(u64, i32)> {
        let (peak, ops) = self.peak?;
        // SAFETY: the table exists only where its instructions run (`for_isa` checked).
        Some((iterations * ops, unsafe { peak(iterations, a, b) }))
    }
}

// ANCHOR: product_scalar
/// The oracle: each output pixel's sums over the window, one input channel at a time, from the
/// unpacked weights. Zero inputs (most of them, after a ReLU) are skipped.
fn product_scalar(layer: &Int8Layer, s: &Int8Shape, input: &[u8], mut out: Int8Out<'_>) {
    let (p, os) = (s.pad(), s.out_stride());
    let (hp, wp) = (s.h + 2 * p, s.w + 2 * p);
    let mut acc = vec![0i32; s.c_out];
    for img in 0..s.n {
        for y in 0..s.h {
            for x in 0..s.w {
                acc.fill(0);
                for ky in 0..s.k {
                    for kx in 0..s.k {
                        let at = ((img * hp + y + ky) * wp + x + kx) * s.in_stride;
                        let tap = ky * s.k + kx;
                        for (ci, &a) in input[at..at + s.c_in].iter().enumerate() {
                            if a == 0 {
                                continue;
                            }
                            let w = &layer.hwio[(tap * s.c_in + ci) * s.c_out..][..s.c_out];
                            for (acc, &w) in acc.iter_mut().zip(w) {
                                *acc += i32::from(a) * i32::from(w);
                            }
                        }
                    }
                }
                let pixel = ((img * s.h + y) * s.w + x) * os;
                for c in 0..os {
                    let sum = acc.get(c).copied().unwrap_or(0);
                    let (scale, bias) = (layer.scale[c], layer.bias[c]);
                    match &mut out {
                        Int8Out::U8(o) => o[pixel + c] = requantize_u8(sum, scale, bias),
                        Int8Out::F32(o) => o[pixel + c] = requantize_f32(sum, scale, bias),
                    }
                }
            }
        }
    }
}
// ANCHOR_END: product_scalar

// ANCHOR: helpers
/// Quantises NHWC images `x` (`[n, h, w, c]`, values in [0, 1]) to bytes, `round(255 x)`, into
/// `out`, the padded input of a k x k layer: `[n, h + 2p, w + 2p, stride]`, border untouched.
pub fn quantize_images(x: &[f32], n: usize, h: usize, w: usize, c: usize, p: usize, stride: usize, out: &mut [u8]) {
    assert_eq!(x.len(), n * h * w * c, "image length");
    assert_eq!(out.len(), n * (h + 2 * p) * (w + 2 * p) * stride, "padded length");
    for img in 0..n {
        for y in 0..h {
            let row = &x[(img * h + y) * w * c..][..w * c];
            let dst = &mut out[((img * (h + 2 * p) + y + p) * (w + 2 * p) + p) * stride..][..w * stride];
            for (src, dst) in row.chunks_exact(c).zip(dst.chunks_exact_mut(stride)) {
                for (d, &v) in dst.iter_mut().zip(src) {
                    // NaN becomes 0 (`as` saturates and maps NaN to 0).
                    *d = (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

/// 2x2 max-pool of byte maps `x` (`[n, h, w, c]`) into the padded input `out` of the next
/// layer (`[n, h/2 + 2p, w/2 + 2p, c]`). The maximum of the codes is the code of the maximum:
/// quantisation is monotonic, so pooling after it changes nothing.
pub fn max_pool_u8(x: &[u8], n: usize, h: usize, w: usize, c: usize, p: usize, out: &mut [u8]) {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), n * h * w * c, "input length");
    assert_eq!(out.len(), n * (ho + 2 * p) * (wo + 2 * p) * c, "padded length");
    for img in 0..n {
        for y in 0..ho {
            let row = |dy: usize| &x[(img * h + 2 * y + dy) * w * c..][..w * c];
            let (top, bottom) = (row(0), row(1));
            let dst = &mut out[((img * (ho + 2 * p) + y + p) * (wo + 2 * p) + p) * c..][..wo * c];
            // Two input pixels side by side are 2c bytes; slices of equal length let the
            // compiler compare whole vectors of bytes (`vpmaxub`).
            for ((o, t), b) in dst.chunks_exact_mut(c).zip(top.chunks_exact(2 * c)).zip(bottom.chunks_exact(2 * c)) {
                let (t0, t1) = t.split_at(c);
                let (b0, b1) = b.split_at(c);
                for ((((o, &a), &b), &d), &e) in o.iter_mut().zip(t0).zip(t1).zip(b0).zip(b1) {
                    *o = a.max(b).max(d).max(e);
                }
            }
        }
    }
}

/// Copies byte maps `x` (`[n, h, w, c]`) into the interior of a padded buffer.
pub fn pad_u8(x: &[u8], n: usize, h: usize, w: usize, c: usize, p: usize, out: &mut [u8]) {
    assert_eq!(x.len(), n * h * w * c, "input length");
    assert_eq!(out.len(), n * (h + 2 * p) * (w + 2 * p) * c, "padded length");
    for img in 0..n {
        for y in 0..h {
            let src = &x[(img * h + y) * w * c..][..w * c];
            out[((img * (h + 2 * p) + y + p) * (w + 2 * p) + p) * c..][..w * c].copy_from_slice(src);
        }
    }
}
// ANCHOR_END: helpers
