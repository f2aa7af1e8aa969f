//! Chapter 11: a trained network in int8, for inference.
//!
//! Quantising a layer means choosing, for each tensor, a scale `s` so that `x ≈ s * q` with `q`
//! a byte. Weights get one scale per output channel, `max |w| / 127`, and signed bytes.
//! Activations get one scale per layer output, chosen by *calibration*: the fp32 network runs on
//! a few hundred training photos and the largest value each layer's output reaches becomes code
//! 255. Every activation here follows a ReLU, so unsigned bytes lose nothing to the sign. The
//! image is the simplest case: its values are pixels / 255, so code `q` is the pixel itself.
//!
//! With input scale `s_in`, weight scales `s_w[c]` and output scale `s_out`, output channel `c`
//! of a layer is `relu(s_in * s_w[c] * acc + b[c]) / s_out`, with `acc` the exact integer sum of
//! products of codes: the kernels compute `acc` in integers and apply that one scale and bias
//! per channel (`kernels::int8`). A 2x2 max-pool runs on the codes, which is exact, since the
//! largest code is the code of the largest value. The last layer's output stays f32: logits.

use super::CatDogCnn;
use super::table::{Plan, Step, StepOp};
use crate::kernels::Kernels;
use crate::kernels::int8::{
    GROUP, Int8Error, Int8Kernels, Int8Layer, Int8Out, Int8Output, Int8Shape, LANES, max_pool_u8, pad_u8,
    quantize_images,
};
use crate::nn::Param;

/// The scale of the image's codes: pixels / 255 in, pixels out.
const IMAGE_SCALE: f32 = 1.0 / 255.0;

// ANCHOR: calibration
/// The largest value each layer with weights outputs (after its ReLU), over calibration
/// images: one per layer but the last, whose output stays f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub ranges: Vec<f32>,
}

impl Calibration {
    /// Runs `model` in fp32 on `images` (NHWC, values in [0, 1]) in batches of `batch` and
    /// keeps the largest output of every layer with weights but the last.
    pub fn measure(model: &mut CatDogCnn, k: &Kernels, images: &[f32], batch: usize) -> Calibration {
        let weighted: Vec<usize> = weighted_steps(model.plan());
        let mut ranges = vec![0.0f32; weighted.len().saturating_sub(1)];
        let len = model.image_len();
        for chunk in images.chunks(batch.max(1) * len) {
            model.forward_keeping_outputs(k, chunk);
            let outputs = model.outputs();
            for (range, &step) in ranges.iter_mut().zip(&weighted) {
                *range = outputs[step].iter().fold(*range, |m, &v| m.max(v));
            }
        }
        Calibration { ranges }
    }
}
// ANCHOR_END: calibration

/// The steps of `plan` that have weights.
fn weighted_steps(plan: &Plan) -> Vec<usize> {
    (0..plan.steps().len()).filter(|&i| plan.steps()[i].param.is_some()).collect()
}

/// One quantised layer with what follows it.
#[derive(Clone, Debug)]
struct Stage {
    layer: Int8Layer,
    /// The map it runs on (`1 x 1` for a fully connected layer, whose pixels are the images).
    h: usize,
    w: usize,
    /// A 2x2 max-pool follows.
    pool: bool,
}

impl Stage {
    fn shape(&self, n: usize) -> Int8Shape {
        self.layer.shape(n, self.h, self.w)
    }
}

// ANCHOR: int8_network
/// A network of conv(+ReLU)(+pool) and linear(+ReLU) layers in int8, from a table's plan, its
/// trained parameters and a [`Calibration`].
#[derive(Clone, Debug)]
pub struct Int8Network {
    input: (usize, usize, usize),
    stages: Vec<Stage>,
    n: usize,
    /// Each stage's padded input codes, for the batch size `n`.
    inputs: Vec<Vec<u8>>,
    /// The codes a stage writes before its pool (or its padding) moves them to the next input.
    codes: Vec<u8>,
    /// The last stage's output, `out_stride` values per image, and the logits taken from it.
    last: Vec<f32>,
    logits: Vec<f32>,
}
// ANCHOR_END: int8_network

impl Int8Network {
    // ANCHOR: quantize
    /// Quantises the layers of `plan` with weights `params` (in the plan's order, weight then
    /// bias). Every layer but the last must be followed by a ReLU, and every pool must follow a
    /// convolution.
    pub fn new(plan: &Plan, params: &[&Param], calibration: &Calibration) -> Result<Int8Network, Int8Error> {
        let bad = |what: String| Err(Int8Error::Layer(what));
        let steps = plan.steps();
        let weighted = weighted_steps(plan);
        if calibration.ranges.len() + 1 != weighted.len() {
            return bad(format!("{} calibrated ranges for {} layers", calibration.ranges.len(), weighted.len()));
        }
        let (h0, w0, c0) = plan.input();
        // What flows into the next layer: a map of h x w pixels of `stride` bytes holding `c`
        // channels (the rest zero), its scale, and whether it was flattened.
        let (mut h, mut w, mut c, mut stride) = (h0, w0, c0, c0.next_multiple_of(GROUP));
        let (mut s_in, mut flat) = (IMAGE_SCALE, false);
        let mut stages: Vec<Stage> = Vec::new();
        let mut next_range = calibration.ranges.iter();
        for (i, step) in steps.iter().enumerate() {
            // The layer of this step, if it has weights, and the map it runs on.
            let (pending, map) = match step.op {
                StepOp::Conv2d(s) => {
                    let k = 3;
                    let weights =
                        quantize_weights(weight_of(params, step)?, k * k * s.c_in, s.c_out, |t, o| t * s.c_out + o);
                    let pending = Pending { k, c_in: s.c_in, in_stride: stride, c_out: s.c_out, weights };
                    (c, stride) = (s.c_out, s.c_out.next_multiple_of(LANES));
                    (pending, (h, w))
                }
                StepOp::MaxPool2d(_) => match stages.last_mut() {
                    Some(prev) if prev.h > 1 && !prev.pool && prev.layer.output() == Int8Output::U8 => {
                        prev.pool = true;
                        (h, w) = (h / 2, w / 2);
                        continue;
                    }
                    _ => return bad(format!("{}: int8 pools only right after a convolution", step.name)),
                },
                StepOp::Flatten(_) => {
                    flat = true;
                    continue;
                }
                StepOp::Linear(_) if stages.is_empty() => {
                    return bad(format!("{}: int8 needs a convolution first, to read the image", step.name));
                }
                StepOp::Linear(s) => {
                    // The input codes are `h * w` pixels of `stride` bytes (after a Flatten), or
                    // one row of `stride` bytes: row index `i` of PyTorch's (C, H, W) order is
                    // code `(y * w + x) * stride + ch`.
                    let (rows, k_len) = if flat { (h * w, h * w * stride) } else { (1, stride) };
                    if s.in_features != rows * c {
                        let flowing = rows * c;
                        return bad(format!("{}: {} inputs, but {flowing} values flow in", step.name, s.in_features));
                    }
                    let (n_in, n_out) = (s.in_features, s.out_features);
                    let q = quantize_weights(weight_of(params, step)?, n_in, n_out, |i, o| o * n_in + i);
                    let mut codes = vec![0i8; k_len * n_out];
                    for i in 0..n_in {
                        let (ch, pixel) = (i / rows, i % rows);
                        let dst = (pixel * stride + ch) * n_out;
                        codes[dst..dst + n_out].copy_from_slice(&q.codes[i * n_out..][..n_out]);
                    }
                    let weights = QuantizedWeights { codes, scales: q.scales };
                    let pending = Pending { k: 1, c_in: k_len, in_stride: k_len, c_out: n_out, weights };
                    (h, w, c, stride, flat) = (1, 1, n_out, n_out.next_multiple_of(LANES), false);
                    (pending, (1, 1))
                }
            };
            let bias = params[step.param.expect("a step with weights") + 1];
            let last = Some(&i) == weighted.last();
            let (layer, s_out) = pending.finish(step, bias, s_in, last, &mut next_range)?;
            s_in = s_out;
            stages.push(Stage { layer, h: map.0, w: map.1, pool: false });
        }
        if stages.last().is_none_or(|s| s.layer.output() != Int8Output::F32) {
            return bad("the network must end in a layer with weights".to_string());
        }
        let inputs = vec![Vec::new(); stages.len()];
        Ok(Int8Network {
            input: (h0, w0, c0),
            stages,
            n: 0,
            inputs,
            codes: Vec::new(),
            last: Vec::new(),
            logits: Vec::new(),
        })
    }
    // ANCHOR_END: quantize

    /// The int8 version of `model`, calibrated on `images` (see [`Calibration::measure`]).
    pub fn from_model(model: &mut CatDogCnn, k: &Kernels, images: &[f32]) -> Result<Int8Network, Int8Error> {
        let calibration = Calibration::measure(model, k, images, 16);
        Int8Network::new(&model.plan().clone(), &model.params(), &calibration)
    }

    /// Floats in one input image.
    pub fn image_len(&self) -> usize {
        self.input.0 * self.input.1 * self.input.2
    }

    /// Integer multiply-adds of one image.
    pub fn macs_per_image(&self) -> u64 {
        self.stages.iter().map(|s| s.shape(1).macs()).sum()
    }

    fn resize(&mut self, n: usize) {
        if self.n == n {
            return;
        }
        self.n = n;
        for (buf, stage) in self.inputs.iter_mut().zip(&self.stages) {
            // Zeroed once: the padding border is never written again.
            *buf = vec![0u8; stage.shape(n).input_len()];
        }
        let codes = self.stages.iter().filter(|s| s.layer.output() == Int8Output::U8);
        self.codes = vec![0u8; codes.map(|s| s.shape(n).output_len()).max().unwrap_or(0)];
        let last = self.stages.last().expect("a network has a stage").shape(n);
        self.last = vec![0.0; last.output_len()];
        self.logits = vec![0.0; n * last.c_out];
    }

    // ANCHOR: forward
    /// Images `x` (`[n, h, w, c]`, values in [0, 1]) -> the last layer's outputs, `[n, out]`.
    ///
    /// # Panics
    /// If `x` is not a whole number of images.
    pub fn forward(&mut self, k: &Int8Kernels, x: &[f32]) -> &[f32] {
        let len = self.image_len();
        assert!(x.len().is_multiple_of(len), "{} floats are not whole images of {len}", x.len());
        let n = x.len() / len;
        self.resize(n);
        let (h, w, c) = self.input;
        let first = self.stages[0].shape(n);
        quantize_images(x, n, h, w, c, first.pad(), first.in_stride, &mut self.inputs[0]);
        for i in 0..self.stages.len() {
            let (stage, shape) = (&self.stages[i], self.stages[i].shape(n));
            if stage.layer.output() == Int8Output::F32 {
                k.product(&stage.layer, &shape, &self.inputs[i], Int8Out::F32(&mut self.last));
                continue;
            }
            let codes = &mut self.codes[..shape.output_len()];
            k.product(&stage.layer, &shape, &self.inputs[i], Int8Out::U8(codes));
            let next_pad = self.stages[i + 1].shape(n).pad();
            let os = shape.out_stride();
            if stage.pool {
                max_pool_u8(codes, n, stage.h, stage.w, os, next_pad, &mut self.inputs[i + 1]);
            } else {
                pad_u8(codes, n, stage.h, stage.w, os, next_pad, &mut self.inputs[i + 1]);
            }
        }
        let last = self.stages.last().expect("a network has a stage").shape(n);
        for (img, logits) in self.logits.chunks_exact_mut(last.c_out).enumerate() {
            logits.copy_from_slice(&self.last[img * last.out_stride()..][..last.c_out]);
        }
        &self.logits
    }
    // ANCHOR_END: forward
}

/// The weights of `step` (its bias follows them in `params`).
fn weight_of<'a>(params: &[&'a Param], step: &Step) -> Result<&'a [f32], Int8Error> {
    match step.param {
        Some(i) if i + 1 < params.len() => Ok(params[i].value.as_slice()),
        _ => Err(Int8Error::Layer(format!("{}: its parameters are missing", step.name))),
    }
}

/// Signed codes and one scale per output channel.
struct QuantizedWeights {
    /// `[inputs][outputs]`.
    codes: Vec<i8>,
    scales: Vec<f32>,
}

// ANCHOR: quantize_weights
/// Per output channel `o`: scale `max_i |w(i, o)| / 127` and codes `round(w / scale)`, in
/// `[-127, 127]`; `at(i, o)` is where weight (input `i`, output `o`) is in `w`. A channel of
/// zeros gets scale 1.
fn quantize_weights(w: &[f32], inputs: usize, outputs: usize, at: impl Fn(usize, usize) -> usize) -> QuantizedWeights {
    let mut scales = vec![0.0f32; outputs];
    for i in 0..inputs {
        for (o, s) in scales.iter_mut().enumerate() {
            *s = s.max(w[at(i, o)].abs());
        }
    }
    for s in &mut scales {
        *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
    }
    let mut codes = vec![0i8; inputs * outputs];
    for i in 0..inputs {
        for o in 0..outputs {
            codes[i * outputs + o] = (w[at(i, o)] / scales[o]).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
    QuantizedWeights { codes, scales }
}
// ANCHOR_END: quantize_weights

/// A layer's geometry and quantised weights, before its output scale is known.
struct Pending {
    k: usize,
    c_in: usize,
    in_stride: usize,
    c_out: usize,
    weights: QuantizedWeights,
}

impl Pending {
    /// The int8 layer of `step`: its sums' scale `s_in * s_w[c]`, divided by the output's scale
    /// (the next calibrated range / 255) when it outputs codes. Returns the layer and its
    /// output's scale.
    fn finish<'a>(
        self,
        step: &Step,
        bias: &Param,
        s_in: f32,
        last: bool,
        ranges: &mut impl Iterator<Item = &'a f32>,
    ) -> Result<(Int8Layer, f32), Int8Error> {
        let Pending { k, c_in, in_stride, c_out, weights } = self;
        let bias = bias.value.as_slice();
        if weights.scales.iter().chain(bias).any(|v| !v.is_finite()) {
            return Err(Int8Error::Layer(format!("{}: a weight or bias is not finite", step.name)));
        }
        if last {
            if step.relu {
                return Err(Int8Error::Layer(format!("{}: the last layer's logits take no ReLU in int8", step.name)));
            }
            let scale: Vec<f32> = weights.scales.iter().map(|s| s_in * s).collect();
            let layer = Int8Layer::new(k, c_in, in_stride, c_out, weights.codes, &scale, bias, Int8Output::F32)?;
            return Ok((layer, 1.0));
        }
        if !step.relu {
            return Err(Int8Error::Layer(format!("{}: int8 codes are unsigned, so a ReLU must follow", step.name)));
        }
        let range = *ranges.next().expect("one range per layer but the last (checked)");
        let s_out = if range > 0.0 && range.is_finite() { range / 255.0 } else { 1.0 };
        let scale: Vec<f32> = weights.scales.iter().map(|s| s_in * s / s_out).collect();
        let bias: Vec<f32> = bias.iter().map(|b| b / s_out).collect();
        let layer = Int8Layer::new(k, c_in, in_stride, c_out, weights.codes, &scale, &bias, Int8Output::U8)?;
        Ok((layer, s_out))
    }
}
