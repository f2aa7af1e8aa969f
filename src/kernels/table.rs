//! The kernel table: one function pointer per op, one table per instruction set.

use super::conv_algorithm::WinogradTables;
use super::isa::{Isa, IsaError};
use super::shapes::{Conv2dShape, LinearShape, Pool2dShape, check_len};
use std::sync::OnceLock;

pub(crate) type Conv2dForwardFn = unsafe fn(&Conv2dShape, &[f32], &[f32], &[f32], &mut [f32], bool);
pub(crate) type Conv2dBackwardInputFn = unsafe fn(&Conv2dShape, &[f32], &[f32], &mut [f32]);
pub(crate) type Conv2dBackwardWeightFn = unsafe fn(&Conv2dShape, &[f32], &[f32], &mut [f32], &mut [f32]);
pub(crate) type MaxPool2dForwardFn = unsafe fn(&Pool2dShape, &[f32], &mut [f32]);
pub(crate) type MaxPool2dBackwardFn = unsafe fn(&Pool2dShape, &[f32], &[f32], &[f32], &mut [f32], bool);
pub(crate) type LinearForwardFn = unsafe fn(&LinearShape, &[f32], &[f32], &[f32], &mut [f32]);
pub(crate) type LinearBackwardInputFn = unsafe fn(&LinearShape, &[f32], &[f32], &mut [f32]);
pub(crate) type LinearBackwardWeightFn = unsafe fn(&LinearShape, &[f32], &[f32], &mut [f32], &mut [f32]);
pub(crate) type ReluForwardFn = unsafe fn(&mut [f32]);
pub(crate) type ReluBackwardFn = unsafe fn(&[f32], &mut [f32]);
pub(crate) type SigmoidForwardFn = unsafe fn(&[f32], &mut [f32]);
pub(crate) type SoftmaxForwardFn = unsafe fn(usize, &[f32], &mut [f32]);
pub(crate) type AxpyFn = unsafe fn(f32, &[f32], &mut [f32]);
pub(crate) type SgdMomentumFn = unsafe fn(&mut [f32], &[f32], &mut [f32], f32, f32);
pub(crate) type MaxPool2dForwardWinnersFn = unsafe fn(&Pool2dShape, &[f32], &mut [f32], &mut [u8], bool);
pub(crate) type MaxPool2dBackwardWinnersFn = unsafe fn(&Pool2dShape, &[u8], &[f32], &mut [f32]);
pub(crate) type LinearBackwardUpdateFn =
    unsafe fn(&LinearShape, &[f32], &[f32], &mut [f32], &mut [f32], Option<&mut [f32]>, f32);
pub(crate) type LinearBackwardSweepFn =
    unsafe fn(&LinearShape, &[f32], &[f32], &[f32], &mut [f32], &mut [f32], Option<&mut [f32]>);
pub(crate) type PeakFn = unsafe fn(u64, f32, f32) -> f32;

// ANCHOR: kernels
/// Every op the two networks need, for one instruction set, and the loop that measures the
/// instruction set's peak (chapter 4's yardstick, see `kernels::peak`).
///
/// A `Kernels` value exists only for an instruction set this CPU supports: the only ways to get
/// one are [`Kernels::for_isa`] and [`Kernels::best`], which check first. That is what makes
/// it sound for the safe methods below to call `#[target_feature]` functions.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub(crate) isa: Isa,
    pub(crate) conv2d_forward: Conv2dForwardFn,
    pub(crate) conv2d_backward_input: Conv2dBackwardInputFn,
    pub(crate) conv2d_backward_weight: Conv2dBackwardWeightFn,
    pub(crate) max_pool2d_forward: MaxPool2dForwardFn,
    pub(crate) max_pool2d_backward: MaxPool2dBackwardFn,
    pub(crate) linear_forward: LinearForwardFn,
    pub(crate) linear_backward_input: LinearBackwardInputFn,
    pub(crate) linear_backward_weight: LinearBackwardWeightFn,
    pub(crate) relu_forward: ReluForwardFn,
    pub(crate) relu_backward: ReluBackwardFn,
    pub(crate) sigmoid_forward: SigmoidForwardFn,
    pub(crate) softmax_forward: SoftmaxForwardFn,
    pub(crate) axpy: AxpyFn,
    pub(crate) sgd_momentum_update: SgdMomentumFn,
    pub(crate) peak: PeakFn,
    /// FLOPs of one iteration of `peak`.
    pub(crate) peak_flops_per_iteration: u64,
}
// ANCHOR_END: kernels

// ANCHOR: for_isa
impl Kernels {
    /// The table for `isa`, or why it cannot run here.
    pub fn for_isa(isa: Isa) -> Result<&'static Kernels, IsaError> {
        isa.check()?;
        Ok(table(isa).expect("Isa::check passed, so the table is compiled in"))
    }

    /// The table of the best instruction set available (respecting `SIMD_CNN_MAX_ISA`),
    /// chosen once per process.
    pub fn best() -> Result<&'static Kernels, IsaError> {
        static BEST: OnceLock<Result<&'static Kernels, IsaError>> = OnceLock::new();
        BEST.get_or_init(|| Kernels::for_isa(Isa::best()?)).clone()
    }

    /// The scalar table, which every CPU can run.
    pub fn scalar() -> &'static Kernels {
        &super::scalar::KERNELS
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// The table of each compiled instruction set. The `cfg` attributes on the arms are the only
/// place where the chapters meet the dispatch.
fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Scalar => Some(&super::scalar::KERNELS),
        #[cfg(all(target_arch = "x86_64", feature = "ch4"))]
        Isa::Sse => Some(&super::x86::sse::KERNELS),
        #[cfg(all(target_arch = "x86_64", feature = "ch5"))]
        Isa::Avx2 => Some(&super::x86::avx2::KERNELS),
        #[cfg(all(target_arch = "x86_64", feature = "ch6"))]
        Isa::Avx512 => Some(&super::x86::avx512::KERNELS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
// ANCHOR_END: for_isa

/// Chapter 7: the max-pool that keeps one byte per window for its backward pass, which lets a
/// network fuse each convolution with the pool after it (`model::Network`).
pub(crate) struct PoolWinners {
    pub(crate) forward: MaxPool2dForwardWinnersFn,
    pub(crate) backward: MaxPool2dBackwardWinnersFn,
}

/// Chapter 7: the pool that keeps its winners, for each compiled instruction set.
fn pool_winners(isa: Isa) -> Option<&'static PoolWinners> {
    match isa {
        #[cfg(feature = "ch7")]
        Isa::Scalar => Some(&PoolWinners {
            forward: super::scalar::max_pool2d_forward_winners,
            backward: super::scalar::max_pool2d_backward_winners,
        }),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Sse => Some(&super::x86::pool_winners::SSE),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx2 => Some(&super::x86::pool_winners::AVX2),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx512 => Some(&super::x86::pool_winners::AVX512),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Chapter 7: a linear layer's backward pass in one sweep over its weight, fused with SGD's
/// update of the weight, or storing the weight's gradient.
pub(crate) struct LinearSweeps {
    pub(crate) update: LinearBackwardUpdateFn,
    pub(crate) gradients: LinearBackwardSweepFn,
    /// The input gradient alone, by the same sweep (the scalar table's is its own kernel).
    pub(crate) input: LinearBackwardInputFn,
    /// Whether [`Kernels::linear_backward_input`] takes `input` for a layer of this shape.
    pub(crate) reads_in_rows: fn(&LinearShape) -> bool,
    /// Whether `gradients` writes a layer's weight gradient by streaming stores.
    pub(crate) streams: fn(&LinearShape) -> bool,
}

/// Chapter 7: the sweeps over a linear layer's weight, for each compiled instruction set.
fn linear_sweeps(isa: Isa) -> Option<&'static LinearSweeps> {
    match isa {
        #[cfg(feature = "ch7")]
        Isa::Scalar => Some(&LinearSweeps {
            update: super::scalar::linear_backward_update,
            gradients: super::scalar::linear_backward_sweep,
            input: super::scalar::linear_backward_input,
            streams: |_| false,
            reads_in_rows: |_| false,
        }),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Sse => Some(&super::x86::linear_update::sse::SWEEPS),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx2 => Some(&super::x86::linear_update::avx2::SWEEPS),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx512 => Some(&super::x86::linear_update::avx512::SWEEPS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Chapter 7: the convolution's three passes by im2col (col2im for the input gradient) and a
/// matrix product.
pub(crate) struct Im2col {
    pub(crate) forward: Conv2dForwardFn,
    pub(crate) backward_weight: Conv2dBackwardWeightFn,
    pub(crate) backward_input: Conv2dBackwardInputFn,
}

/// Chapter 7: the im2col passes, for each compiled instruction set.
fn im2col(isa: Isa) -> Option<&'static Im2col> {
    match isa {
        #[cfg(feature = "ch7")]
        Isa::Scalar => Some(&Im2col {
            forward: super::scalar::conv2d_forward_im2col,
            backward_weight: super::scalar::conv2d_backward_weight_im2col,
            backward_input: super::scalar::conv2d_backward_input_im2col,
        }),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Sse => Some(&super::x86::im2col::SSE),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx2 => Some(&super::x86::im2col::AVX2),
        #[cfg(all(target_arch = "x86_64", feature = "ch7"))]
        Isa::Avx512 => Some(&super::x86::im2col::AVX512),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Chapter 10: the Winograd tables of each compiled instruction set (see `conv_algorithm`).
pub(crate) fn winograd_tables(isa: Isa) -> Option<&'static WinogradTables> {
    match isa {
        #[cfg(all(target_arch = "x86_64", feature = "ch10"))]
        Isa::Sse => Some(&super::x86::sse::winograd::TABLES),
        #[cfg(all(target_arch = "x86_64", feature = "ch10"))]
        Isa::Avx2 => Some(&super::x86::avx2::winograd::TABLES),
        #[cfg(all(target_arch = "x86_64", feature = "ch10"))]
        Isa::Avx512 => Some(&super::x86::avx512::winograd::TABLES),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Chapter 11: the bf16 table of each compiled instruction set (see `precision`). Only the
/// AVX-512 one exists, and it may only run where the CPU also has AVX-512 BF16.
pub(crate) fn bf16_table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        #[cfg(all(target_arch = "x86_64", feature = "ch11"))]
        Isa::Avx512 => Some(&super::x86::avx512::bf16::KERNELS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

// The safe entry points. Each checks the slice lengths against the shape (the kernels check
// again: they are callable on their own) and calls through the table.
impl Kernels {
    /// This table, or the scalar one for a convolution with a dimension of 0
    /// ([`Conv2dShape::is_empty`]), which the vector kernels do not handle.
    fn for_shape(&self, shape: &Conv2dShape) -> &Kernels {
        if shape.is_empty() { Kernels::scalar() } else { self }
    }

    /// The same for a linear layer with no image, feature or output ([`LinearShape::is_empty`]).
    fn for_linear(&self, shape: &LinearShape) -> &Kernels {
        if shape.is_empty() { Kernels::scalar() } else { self }
    }

    // ANCHOR: safe_method
    /// `output = conv(input, weight) + bias`, then `max(output, 0)` if `fuse_relu`.
    /// NHWC input and output, HWIO weight `[3, 3, c_in, c_out]`.
    pub fn conv2d_forward(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        output: &mut [f32],
        fuse_relu: bool,
    ) {
        shape.check_forward(input, weight, bias, output);
        let table = self.for_shape(shape);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (table.conv2d_forward)(shape, input, weight, bias, output, fuse_relu) }
    }
    // ANCHOR_END: safe_method

    /// Chapter 7: whether this table has [`Kernels::conv2d_forward_im2col`],
    /// [`Kernels::conv2d_backward_weight_im2col`] and [`Kernels::conv2d_backward_input_im2col`]
    /// (from `ch7` on, every table).
    pub fn has_im2col(&self) -> bool {
        im2col(self.isa).is_some()
    }

    /// Chapter 7: [`Kernels::conv2d_forward`] computed another way, by im2col and a packed
    /// matrix product (`kernels::generic::im2col`), for comparison; the networks convolve
    /// directly. `None` before chapter 7.
    pub fn conv2d_forward_im2col(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        output: &mut [f32],
        fuse_relu: bool,
    ) -> Option<()> {
        shape.check_forward(input, weight, bias, output);
        let f = im2col(self.for_shape(shape).isa)?.forward;
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { f(shape, input, weight, bias, output, fuse_relu) };
        Some(())
    }

    /// Chapter 7: [`Kernels::conv2d_backward_weight`] by im2col and a matrix product per image,
    /// `A^T G`, for comparison. `None` before chapter 7.
    pub fn conv2d_backward_weight_im2col(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
    ) -> Option<()> {
        shape.check_backward_weight(input, grad_output, grad_weight, grad_bias);
        let f = im2col(self.for_shape(shape).isa)?.backward_weight;
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { f(shape, input, grad_output, grad_weight, grad_bias) };
        Some(())
    }

    /// Chapter 7: [`Kernels::conv2d_backward_input`] by a matrix product and col2im per image,
    /// `col2im(G B^T)`, for comparison. `None` before chapter 7.
    pub fn conv2d_backward_input_im2col(
        &self,
        shape: &Conv2dShape,
        grad_output: &[f32],
        weight: &[f32],
        grad_input: &mut [f32],
    ) -> Option<()> {
        shape.check_backward_input(grad_output, weight, grad_input);
        let f = im2col(self.for_shape(shape).isa)?.backward_input;
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { f(shape, grad_output, weight, grad_input) };
        Some(())
    }

    /// `grad_input = conv_transpose(grad_output, weight)`, overwriting `grad_input`.
    pub fn conv2d_backward_input(
        &self,
        shape: &Conv2dShape,
        grad_output: &[f32],
        weight: &[f32],
        grad_input: &mut [f32],
    ) {
        shape.check_backward_input(grad_output, weight, grad_input);
        let table = self.for_shape(shape);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (table.conv2d_backward_input)(shape, grad_output, weight, grad_input) }
    }

    /// `grad_weight` and `grad_bias` of the batch, overwriting both.
    pub fn conv2d_backward_weight(
        &self,
        shape: &Conv2dShape,
        input: &[f32],
        grad_output: &[f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
    ) {
        shape.check_backward_weight(input, grad_output, grad_weight, grad_bias);
        let table = self.for_shape(shape);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (table.conv2d_backward_weight)(shape, input, grad_output, grad_weight, grad_bias) }
    }

    /// 2x2 max of each window.
    pub fn max_pool2d_forward(&self, shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
        shape.check_forward(input, output);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.max_pool2d_forward)(shape, input, output) }
    }

    /// Routes each output gradient to the first input of its window (in scan order) that equals
    /// the window's maximum; every other input gets zero. With `fuse_relu` the gradient is also
    /// dropped where the maximum is not positive, which is the backward pass of a ReLU that came
    /// before the pool.
    pub fn max_pool2d_backward(
        &self,
        shape: &Pool2dShape,
        input: &[f32],
        output: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        fuse_relu: bool,
    ) {
        shape.check_backward(input, output, grad_output, grad_input);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.max_pool2d_backward)(shape, input, output, grad_output, grad_input, fuse_relu) }
    }

    // ANCHOR: winners_methods
    /// Chapter 7: whether this table has the pool that keeps its winners, and so whether a
    /// network may fuse each convolution with its pool (from `ch7` on, every table).
    pub fn keeps_pool_winners(&self) -> bool {
        pool_winners(self.isa).is_some()
    }

    /// [`Kernels::max_pool2d_forward`] that also writes `winners`, one byte per output: `1..=4`
    /// names the input of the window that gets the gradient (the first equal to the maximum,
    /// in scan order), `0` none (the maximum is not positive after a fused ReLU, or NaN). A
    /// table without it ([`Kernels::keeps_pool_winners`]) runs the scalar one.
    pub fn max_pool2d_forward_winners(
        &self,
        shape: &Pool2dShape,
        input: &[f32],
        output: &mut [f32],
        winners: &mut [u8],
        fuse_relu: bool,
    ) {
        shape.check_forward_winners(input, output, winners);
        match pool_winners(self.isa) {
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            Some(t) => unsafe { (t.forward)(shape, input, output, winners, fuse_relu) },
            None => super::scalar::max_pool2d_forward_winners(shape, input, output, winners, fuse_relu),
        }
    }

    /// The pool's backward pass from its winners: `grad_output[i]` goes to the input byte `i`
    /// names, zero to every other input.
    pub fn max_pool2d_backward_winners(
        &self,
        shape: &Pool2dShape,
        winners: &[u8],
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        shape.check_backward_winners(winners, grad_output, grad_input);
        match pool_winners(self.isa) {
            // SAFETY: as above.
            Some(t) => unsafe { (t.backward)(shape, winners, grad_output, grad_input) },
            None => super::scalar::max_pool2d_backward_winners(shape, winners, grad_output, grad_input),
        }
    }
    // ANCHOR_END: winners_methods

    /// `y = x W^T + b`.
    pub fn linear_forward(&self, shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
        shape.check_forward(x, weight, bias, y);
        let k = self.for_linear(shape);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (k.linear_forward)(shape, x, weight, bias, y) }
    }

    /// `grad_x = grad_y W`, overwriting `grad_x`. From chapter 7, weights at least half as large
    /// as the last-level cache are read in rows ([`Kernels::linear_backward_input_in_rows`],
    /// chosen by [`Kernels::linear_reads_in_rows`]).
    pub fn linear_backward_input(&self, shape: &LinearShape, grad_y: &[f32], weight: &[f32], grad_x: &mut [f32]) {
        shape.check_backward_input(grad_y, weight, grad_x);
        let k = self.for_linear(shape);
        match linear_sweeps(k.isa) {
            // Chapter 7: weights that live in memory are read in rows.
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            Some(f) if (f.reads_in_rows)(shape) => unsafe { (f.input)(shape, grad_y, weight, grad_x) },
            // SAFETY: as above.
            _ => unsafe { (k.linear_backward_input)(shape, grad_y, weight, grad_x) },
        }
    }

    /// `grad_weight = grad_y^T x` and `grad_bias = sum of grad_y over the batch`, overwriting both.
    pub fn linear_backward_weight(
        &self,
        shape: &LinearShape,
        x: &[f32],
        grad_y: &[f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
    ) {
        shape.check_backward_weight(x, grad_y, grad_weight, grad_bias);
        let k = self.for_linear(shape);
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (k.linear_backward_weight)(shape, x, grad_y, grad_weight, grad_bias) }
    }

    // ANCHOR: linear_update_methods
    /// Chapter 7: whether this table can run a linear layer's backward pass and the SGD step
    /// on its weight as one sweep ([`Kernels::linear_backward_update`]; from `ch7` on, every
    /// table).
    pub fn updates_in_backward(&self) -> bool {
        linear_sweeps(self.isa).is_some()
    }

    /// [`Kernels::linear_backward_input`] (if `grad_x` is given, from the weights before the
    /// update), [`Kernels::linear_backward_weight`] and `axpy(-lr, grad_weight, weight)` in one
    /// sweep over the weight, which is read once and written once; the weight gradient is
    /// never stored. Bit for bit the three calls. A table without it runs the scalar one.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward_update(
        &self,
        shape: &LinearShape,
        x: &[f32],
        grad_y: &[f32],
        weight: &mut [f32],
        grad_bias: &mut [f32],
        grad_x: Option<&mut [f32]>,
        lr: f32,
    ) {
        shape.check_backward_sweep(x, grad_y, weight, weight, grad_bias, grad_x.as_deref());
        let k = self.for_linear(shape);
        match linear_sweeps(k.isa) {
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            Some(f) => unsafe { (f.update)(shape, x, grad_y, weight, grad_bias, grad_x, lr) },
            None => super::scalar::linear_backward_update(shape, x, grad_y, weight, grad_bias, grad_x, lr),
        }
    }

    /// Whether [`Kernels::linear_backward_input`] reads this layer's weights in rows, by the
    /// sweep (chapter 7: on x86, weights at least half as large as the last-level cache, the
    /// rule that also decides which gradients AVX-512 streams).
    pub fn linear_reads_in_rows(&self, shape: &LinearShape) -> bool {
        linear_sweeps(self.isa).is_some_and(|f| (f.reads_in_rows)(shape))
    }

    /// [`Kernels::linear_backward_input`] by the sweep of [`Kernels::linear_backward_update`]:
    /// the weights read in rows, a panel at a time, rather than down their columns. Bit for bit
    /// chapter 4's tiles, which a table without it runs (and the scalar table, whose kernel
    /// reads in rows already). `linear_backward_input` takes this path itself for the layers of
    /// [`Kernels::linear_reads_in_rows`].
    pub fn linear_backward_input_in_rows(
        &self,
        shape: &LinearShape,
        grad_y: &[f32],
        weight: &[f32],
        grad_x: &mut [f32],
    ) {
        shape.check_backward_input(grad_y, weight, grad_x);
        let k = self.for_linear(shape);
        match linear_sweeps(k.isa) {
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            Some(f) => unsafe { (f.input)(shape, grad_y, weight, grad_x) },
            // SAFETY: as above.
            None => unsafe { (k.linear_backward_input)(shape, grad_y, weight, grad_x) },
        }
    }

    /// Whether [`Kernels::linear_backward_sweep`] writes the weight gradient of a layer of this
    /// shape by streaming stores, given a gradient that starts on a whole vector and rows of
    /// whole vectors (chapter 7: AVX-512's sweep, for weights at least half as large as the
    /// last-level cache).
    pub fn linear_sweep_streams(&self, shape: &LinearShape) -> bool {
        linear_sweeps(self.isa).is_some_and(|f| (f.streams)(shape))
    }

    /// [`Kernels::linear_backward_weight`] and, if `grad_x` is given,
    /// [`Kernels::linear_backward_input`] in one sweep over the weight, which is read once, by
    /// the tile that also makes its share of the input gradient. Bit for bit the two calls,
    /// which a table without it runs.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward_sweep(
        &self,
        shape: &LinearShape,
        x: &[f32],
        grad_y: &[f32],
        weight: &[f32],
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
        grad_x: Option<&mut [f32]>,
    ) {
        shape.check_backward_sweep(x, grad_y, weight, grad_weight, grad_bias, grad_x.as_deref());
        let k = self.for_linear(shape);
        match linear_sweeps(k.isa) {
            // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
            Some(f) => unsafe { (f.gradients)(shape, x, grad_y, weight, grad_weight, grad_bias, grad_x) },
            None => {
                self.linear_backward_weight(shape, x, grad_y, grad_weight, grad_bias);
                if let Some(gx) = grad_x {
                    self.linear_backward_input(shape, grad_y, weight, gx);
                }
            }
        }
    }
    // ANCHOR_END: linear_update_methods

    /// `x = max(x, 0)` in place.
    pub fn relu_forward(&self, x: &mut [f32]) {
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.relu_forward)(x) }
    }

    /// `grad = grad * (y > 0)` in place, where `y` is the ReLU's output.
    pub fn relu_backward(&self, y: &[f32], grad: &mut [f32]) {
        check_len("relu grad", grad, y.len());
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.relu_backward)(y, grad) }
    }

    /// `y = 1 / (1 + exp(-x))`.
    pub fn sigmoid_forward(&self, x: &[f32], y: &mut [f32]) {
        check_len("sigmoid output", y, x.len());
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.sigmoid_forward)(x, y) }
    }

    /// Softmax of each row of `cols` values.
    pub fn softmax_forward(&self, cols: usize, x: &[f32], y: &mut [f32]) {
        assert!(cols > 0 && x.len().is_multiple_of(cols), "softmax: {} values are not rows of {cols}", x.len());
        check_len("softmax output", y, x.len());
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.softmax_forward)(cols, x, y) }
    }

    /// `y += alpha * x`. Plain SGD is `axpy(-lr, grad, param)`.
    pub fn axpy(&self, alpha: f32, x: &[f32], y: &mut [f32]) {
        check_len("axpy y", y, x.len());
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.axpy)(alpha, x, y) }
    }

    /// SGD with momentum, as PyTorch does it: `v = momentum * v + grad; param -= lr * v`.
    pub fn sgd_momentum_update(&self, param: &mut [f32], grad: &[f32], velocity: &mut [f32], lr: f32, momentum: f32) {
        check_len("sgd grad", grad, param.len());
        check_len("sgd velocity", velocity, param.len());
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        unsafe { (self.sgd_momentum_update)(param, grad, velocity, lr, momentum) }
    }

    /// `iterations` rounds of the peak loop on `a` and `b`: the FLOPs done and the sum of the
    /// accumulators (see `kernels::peak`).
    pub(crate) fn peak(&self, iterations: u64, a: f32, b: f32) -> (u64, f32) {
        // SAFETY: a `Kernels` exists only for an ISA this CPU supports (`for_isa` checked it).
        let checksum = unsafe { (self.peak)(iterations, a, b) };
        (iterations * self.peak_flops_per_iteration, checksum)
    }
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish_non_exhaustive()
    }
}
