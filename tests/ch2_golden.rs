//! Chapter 2: our forward passes and loss values agree with PyTorch's, on every instruction set.
//!
//! The expected values are golden vectors that `scripts/golden.py` computed with PyTorch in
//! float32 and wrote to `tests/golden/*.safetensors`; the tests need only those files. Each test
//! quotes the Python that made its data. Run with `--nocapture` to see, for every case, the
//! largest difference from PyTorch and how much of the tolerance it uses.
//!
//! Tolerances: both sides compute in float32 but sum in different orders (PyTorch's oneDNN
//! and BLAS kernels block and vectorise their sums, ours run in order or in lanes), so a sum of
//! `n` products whose magnitudes add up to `S` may differ by up to `n * S * 2^-24` in the worst
//! case and by a few `sqrt(n) * S * 2^-24` in practice. Each constant says which sums it covers.
mod common;
mod golden;

use common::for_each_isa;
use golden::{Golden, Tol, check, max_pool2d_forward};
use simd_cnn::kernels::Kernels;
use simd_cnn::nn::{Conv2d, ReLU, Sigmoid, Softmax, loss};
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::{nchw_to_nhwc, nhwc_to_nchw};

/// Conv2d forward: each output sums `9 * c_in` (27 to 144) products of unit normal inputs and
/// weights below `1 / sqrt(9 * c_in)`, whose magnitudes add up to about 5. The worst-case
/// bound is `144 * 2^-24 * 5` = 4e-5 on each side; typical errors are `sqrt(144)` times
/// smaller.
const CONV_FORWARD: Tol = Tol { atol: 3e-5, rtol: 1e-5 };
/// Linear forward: sums of 17 products of order 1, and of 784 products of pixels in [0, 1]
/// and weights below `1 / sqrt(784)`, whose magnitudes add up to about 7: a worst case of
/// `784 * 2^-24 * 7` = 3e-4 and a typical error of `sqrt(784) * 2^-24 * 7` = 1e-5.
const LINEAR_FORWARD: Tol = Tol { atol: 3e-5, rtol: 1e-5 };
/// Sigmoid: one `exp` and one division, each within an ulp or two on both sides (PyTorch's
/// vectorised `exp` is not correctly rounded either); tiny values near 1e-39 are subnormal,
/// which `atol` covers.
const SIGMOID: Tol = Tol { atol: 1e-7, rtol: 1e-6 };
/// Softmax: `exp` of the shifted row, a sum of at most 17 terms and a division.
const SOFTMAX: Tol = Tol { atol: 1e-7, rtol: 1e-6 };
/// Loss values: means of at most 11 terms of `log` and `exp`; ours sums in f64.
const LOSS: Tol = Tol { atol: 1e-6, rtol: 1e-6 };

/// Runs our convolution (with the ReLU fused when `relu`) on the case's input; returns the
/// output in PyTorch's NCHW layout.
fn conv2d_forward(k: &Kernels, layer: &Conv2d, x_nchw: &Tensor, relu: bool) -> Tensor {
    let &[n, _, h, w] = x_nchw.shape() else { panic!("x is not NCHW") };
    let shape = layer.shape(n, h, w);
    let mut y = Tensor::zeros(&[n, h, w, layer.c_out()]);
    layer.forward(k, &shape, nchw_to_nhwc(x_nchw).as_slice(), y.as_mut_slice(), relu);
    nhwc_to_nchw(&y)
}

/// `nn.Conv2d(k=3, padding=1)` forward on odd sizes (3->5 on 2x3x7x9, 16->8 on 1x16x5x5) and
/// a convolution followed by ReLU (4->6 on 2x4x6x5, fused into our kernel):
///
/// ```python
/// torch.manual_seed(seed)
/// conv = nn.Conv2d(c_in, c_out, 3, padding=1)  # PyTorch's default init, bias included
/// x = torch.randn(n, c_in, h, w, requires_grad=True)
/// y = torch.relu(conv(x)) if relu else conv(x)
/// ```
#[test]
fn conv2d_forward_matches_pytorch() {
    let g = Golden::open("conv2d");
    for_each_isa(|k| {
        for (case, relu) in [("a", false), ("b", false), ("relu", true)] {
            let layer = g.conv2d(case);
            let y = conv2d_forward(k, &layer, &g.tensor(&format!("{case}.x")), relu);
            let want = g.tensor(&format!("{case}.y"));
            assert_eq!(y.shape(), want.shape());
            check(&format!("{} conv2d {case} y", k.isa()), y.as_slice(), want.as_slice(), CONV_FORWARD);
        }
    });
}

/// `nn.MaxPool2d(2)` forward on odd sizes (the last row and column are dropped), on random
/// values and on integers that tie:
///
/// ```python
/// torch.manual_seed(10)
/// random = torch.randn(2, 3, 5, 7)
/// ties = torch.randint(-2, 3, (2, 3, 7, 9)).float()
/// ties[0, 1, 1:5, 2:7] = 1.0
/// # for x in (random, ties):
/// y = F.max_pool2d(x, 2)  # nn.MaxPool2d(2)
/// ```
///
/// A maximum is one of its inputs, so the outputs must be equal, not just close.
#[test]
fn max_pool2d_forward_matches_pytorch() {
    let g = Golden::open("max_pool2d");
    for_each_isa(|k| {
        for case in ["random", "ties"] {
            let (_, _, y) = max_pool2d_forward(k, &g.tensor(&format!("{case}.x")));
            let want = g.tensor(&format!("{case}.y"));
            check(
                &format!("{} max_pool2d {case} y", k.isa()),
                nhwc_to_nchw(&y).as_slice(),
                want.as_slice(),
                Tol::EXACT,
            );
        }
    });
}

/// The input of a linear case: `randn` values, or uint8 pixels / 255.
fn linear_input(g: &Golden, case: &str) -> Tensor {
    if case == "b" { g.images("b.pixels") } else { g.tensor(&format!("{case}.x")) }
}

/// `nn.Linear` forward, 5x17 -> 7 on `randn` and 32x784 -> 10 on MNIST-like pixels:
///
/// ```python
/// torch.manual_seed(seed)
/// fc = nn.Linear(in_features, out_features)  # PyTorch's default init, bias included
/// x = torch.randn(batch, in_features, requires_grad=True)  # case a
/// x = images_to_float(torch.randint(0, 256, (batch, in_features), dtype=torch.uint8))  # case b
/// y = fc(x)
/// ```
#[test]
fn linear_forward_matches_pytorch() {
    let g = Golden::open("linear");
    for_each_isa(|k| {
        for case in ["a", "b"] {
            let layer = g.linear(case);
            let x = linear_input(&g, case);
            let batch = x.shape()[0];
            let mut y = vec![0.0; batch * layer.out_features()];
            layer.forward(k, batch, x.as_slice(), &mut y);
            check(
                &format!("{} linear {case} y", k.isa()),
                &y,
                g.tensor(&format!("{case}.y")).as_slice(),
                LINEAR_FORWARD,
            );
        }
    });
}

/// ReLU, Sigmoid and Softmax forward:
///
/// ```python
/// torch.manual_seed(30)
/// x = torch.randn(3, 11)
/// x[0, :3] = 0.0
/// x[1, 0] = -0.0
/// y = torch.relu(x)
///
/// s = torch.cat([4 * torch.randn(13), torch.tensor([0.0, -0.0, 15.0, -15.0, 88.0, -88.0, 100.0, -100.0])])
/// sigmoid = {"x": s, "y": torch.sigmoid(s)}
///
/// for name, rows, cols in [("a", 4, 10), ("b", 3, 17), ("c", 2, 1)]:
///     z = 3 * torch.randn(rows, cols)
///     z[-1] += 100.0
///     softmax |= {f"softmax_{name}.x": z, f"softmax_{name}.y": torch.softmax(z, dim=1)}
/// ```
///
/// `max(x, 0)` rounds nothing, so ReLU must agree exactly.
#[test]
fn activations_match_pytorch() {
    let g = Golden::open("activations");
    for_each_isa(|k| {
        let isa = k.isa();
        let mut y = g.tensor("relu.x");
        ReLU.forward(k, y.as_mut_slice());
        check(&format!("{isa} relu y"), y.as_slice(), g.tensor("relu.y").as_slice(), Tol::EXACT);

        let x = g.tensor("sigmoid.x");
        let mut y = vec![0.0; x.len()];
        Sigmoid.forward(k, x.as_slice(), &mut y);
        check(&format!("{isa} sigmoid y"), &y, g.tensor("sigmoid.y").as_slice(), SIGMOID);

        for case in ["a", "b", "c"] {
            let x = g.tensor(&format!("softmax_{case}.x"));
            let mut y = vec![0.0; x.len()];
            Softmax { classes: x.shape()[1] }.forward(k, x.as_slice(), &mut y);
            check(&format!("{isa} softmax {case} y"), &y, g.tensor(&format!("softmax_{case}.y")).as_slice(), SOFTMAX);
        }
    });
}

/// The values of both losses (their gradients are in `ch3_golden`):
///
/// ```python
/// torch.manual_seed(40)
/// z = torch.cat([3 * torch.randn(6), torch.tensor([0.0, 20.0, -20.0, 60.0, -60.0])]).requires_grad_(True)
/// t = torch.randint(0, 2, (11,)).float()
/// t[-4:] = torch.tensor([0.0, 1.0, 1.0, 0.0])  # large logits both right and wrong
/// bce = F.binary_cross_entropy_with_logits(z, t)  # nn.BCEWithLogitsLoss(), mean
///
/// logits = 2 * torch.randn(6, 10)
/// logits[-1] += 100.0
/// labels = torch.randint(0, 10, (6,))
/// ce = F.cross_entropy(logits, labels)  # nn.CrossEntropyLoss(), mean
/// ```
#[test]
fn loss_values_match_pytorch() {
    let g = Golden::open("losses");
    for_each_isa(|k| {
        let isa = k.isa();
        let z = g.tensor("bce.logits");
        let mut grad = vec![0.0; z.len()];
        let bce = loss::bce_with_logits(k, z.as_slice(), g.tensor("bce.targets").as_slice(), &mut grad);
        check(&format!("{isa} bce loss"), &[bce], &[g.scalar("bce.loss")], LOSS);

        let logits = g.tensor("ce.logits");
        let classes = logits.shape()[1];
        let (mut probs, mut grad) = (vec![0.0; logits.len()], vec![0.0; logits.len()]);
        let ce = loss::softmax_cross_entropy(k, classes, logits.as_slice(), &g.u8s("ce.labels"), &mut probs, &mut grad);
        check(&format!("{isa} cross-entropy loss"), &[ce], &[g.scalar("ce.loss")], LOSS);
    });
}
