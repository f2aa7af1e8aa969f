//! The shapes the kernels work on, and the length checks every kernel starts with.
//!
//! Activations are NHWC (`[n, h, w, c]`), convolution weights HWIO (`[3, 3, c_in, c_out]`),
//! linear weights `[out_features, in_features]` as in PyTorch.

// ANCHOR: conv2d_shape
/// A 3x3 convolution with stride 1 and padding 1 (the output has the input's height and width)
/// over NHWC activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Batch size.
    pub n: usize,
    /// Height and width of both input and output.
    pub h: usize,
    pub w: usize,
    pub c_in: usize,
    pub c_out: usize,
}
// ANCHOR_END: conv2d_shape

impl Conv2dShape {
    /// Kernel height and width.
    pub const K: usize = 3;

    /// Whether a dimension is 0: no pixel or no channel, so nothing for a vector kernel to do.
    /// The tables send such shapes to the scalar kernels, which handle them; the vector
    /// kernels assume at least one pixel and one channel of each kind.
    pub fn is_empty(&self) -> bool {
        let Conv2dShape { n, h, w, c_in, c_out } = *self;
        n == 0 || h == 0 || w == 0 || c_in == 0 || c_out == 0
    }

    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c_in
    }

    pub fn output_len(&self) -> usize {
        self.n * self.h * self.w * self.c_out
    }

    /// `[3, 3, c_in, c_out]`
    pub fn weight_len(&self) -> usize {
        Self::K * Self::K * self.c_in * self.c_out
    }

    /// Floating-point operations of one pass (forward, backward-input or backward-weight all
    /// do the same number of multiply-adds), counting a multiply-add as two.
    pub fn flops(&self) -> u64 {
        2 * (self.n * self.h * self.w * Self::K * Self::K * self.c_in * self.c_out) as u64
    }

    pub(crate) fn check_forward(&self, input: &[f32], weight: &[f32], bias: &[f32], output: &[f32]) {
        check_len("conv2d input", input, self.input_len());
        check_len("conv2d weight", weight, self.weight_len());
        check_len("conv2d bias", bias, self.c_out);
        check_len("conv2d output", output, self.output_len());
    }

    pub(crate) fn check_backward_input(&self, grad_output: &[f32], weight: &[f32], grad_input: &[f32]) {
        check_len("conv2d grad_output", grad_output, self.output_len());
        check_len("conv2d weight", weight, self.weight_len());
        check_len("conv2d grad_input", grad_input, self.input_len());
    }

    pub(crate) fn check_backward_weight(
        &self,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &[f32],
        grad_bias: &[f32],
    ) {
        check_len("conv2d input", input, self.input_len());
        check_len("conv2d grad_output", grad_output, self.output_len());
        check_len("conv2d grad_weight", grad_weight, self.weight_len());
        check_len("conv2d grad_bias", grad_bias, self.c_out);
    }
}

// ANCHOR: pool2d_shape
/// A 2x2 max-pool with stride 2 over NHWC activations. Like PyTorch, an odd last row or column
/// is dropped: the output is `h / 2` by `w / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}
// ANCHOR_END: pool2d_shape

impl Pool2dShape {
    pub fn h_out(&self) -> usize {
        self.h / 2
    }

    pub fn w_out(&self) -> usize {
        self.w / 2
    }

    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    pub fn output_len(&self) -> usize {
        self.n * self.h_out() * self.w_out() * self.c
    }

    /// Comparisons of the forward pass (3 per output); pooling has no multiply-adds, so the
    /// benchmarks report it in elements rather than FLOPs.
    pub fn flops(&self) -> u64 {
        3 * self.output_len() as u64
    }

    pub(crate) fn check_forward(&self, input: &[f32], output: &[f32]) {
        check_len("max_pool2d input", input, self.input_len());
        check_len("max_pool2d output", output, self.output_len());
    }

    pub(crate) fn check_backward(&self, input: &[f32], output: &[f32], grad_output: &[f32], grad_input: &[f32]) {
        self.check_forward(input, output);
        check_len("max_pool2d grad_output", grad_output, self.output_len());
        check_len("max_pool2d grad_input", grad_input, self.input_len());
    }

    /// The lengths of chapter 7's pool that keeps its winners: one byte per output.
    pub(crate) fn check_forward_winners(&self, input: &[f32], output: &[f32], winners: &[u8]) {
        self.check_forward(input, output);
        check_len("max_pool2d winners", winners, self.output_len());
    }

    pub(crate) fn check_backward_winners(&self, winners: &[u8], grad_output: &[f32], grad_input: &[f32]) {
        check_len("max_pool2d winners", winners, self.output_len());
        check_len("max_pool2d grad_output", grad_output, self.output_len());
        check_len("max_pool2d grad_input", grad_input, self.input_len());
    }
}

// ANCHOR: linear_shape
/// A fully connected layer `y = x W^T + b` on a batch: x `[batch, in]`, W `[out, in]`,
/// b `[out]`, y `[batch, out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearShape {
    pub batch: usize,
    pub in_features: usize,
    pub out_features: usize,
}
// ANCHOR_END: linear_shape

impl LinearShape {
    /// Whether a dimension is 0: nothing for a vector kernel to do. The tables send such shapes
    /// to the scalar kernels, which handle them.
    pub fn is_empty(&self) -> bool {
        self.batch == 0 || self.in_features == 0 || self.out_features == 0
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_features
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_features
    }

    pub fn weight_len(&self) -> usize {
        self.in_features * self.out_features
    }

    /// FLOPs of one pass (forward, backward-input or backward-weight).
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.in_features * self.out_features) as u64
    }

    pub(crate) fn check_forward(&self, x: &[f32], weight: &[f32], bias: &[f32], y: &[f32]) {
        check_len("linear input", x, self.input_len());
        check_len("linear weight", weight, self.weight_len());
        check_len("linear bias", bias, self.out_features);
        check_len("linear output", y, self.output_len());
    }

    pub(crate) fn check_backward_input(&self, grad_y: &[f32], weight: &[f32], grad_x: &[f32]) {
        check_len("linear grad_output", grad_y, self.output_len());
        check_len("linear weight", weight, self.weight_len());
        check_len("linear grad_input", grad_x, self.input_len());
    }

    pub(crate) fn check_backward_weight(&self, x: &[f32], grad_y: &[f32], grad_weight: &[f32], grad_bias: &[f32]) {
        check_len("linear input", x, self.input_len());
        check_len("linear grad_output", grad_y, self.output_len());
        check_len("linear grad_weight", grad_weight, self.weight_len());
        check_len("linear grad_bias", grad_bias, self.out_features);
    }

    /// Chapter 7's sweeps: both backward passes' operands (`grad_weight` is the weight itself
    /// when the sweep updates it), the input gradient only if one is asked for.
    pub(crate) fn check_backward_sweep(
        &self,
        x: &[f32],
        grad_y: &[f32],
        weight: &[f32],
        grad_weight: &[f32],
        grad_bias: &[f32],
        grad_x: Option<&[f32]>,
    ) {
        check_len("linear weight", weight, self.weight_len());
        self.check_backward_weight(x, grad_y, grad_weight, grad_bias);
        if let Some(grad_x) = grad_x {
            check_len("linear grad_input", grad_x, self.input_len());
        }
    }
}

/// Every kernel checks its slices before touching them; the SIMD kernels rely on these checks
/// for the safety of their unchecked loads and stores.
#[track_caller]
pub(crate) fn check_len<T>(what: &str, slice: &[T], expected: usize) {
    assert_eq!(slice.len(), expected, "{what}: expected {expected} elements, got {}", slice.len());
}
