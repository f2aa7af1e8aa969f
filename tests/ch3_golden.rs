//! Chapter 3: our backward passes, both whole networks and one SGD step agree with PyTorch's
//! autograd and `torch.optim.SGD`, on every instruction set.
//!
//! The expected values are golden vectors that `scripts/golden.py` computed with PyTorch in
//! float32 and wrote to `tests/golden/*.safetensors`; the tests need only those files. Each test
//! quotes the Python that made its data. Every layer case uses the loss `(y * r).sum()` with a
//! stored random `r`, so the gradient arriving at the layer's output is exactly `r`. Run with
//! `--nocapture` to see, for every case, the largest difference from PyTorch and how much of the
//! tolerance it uses.
//!
//! Tolerances: both sides compute in float32 but sum in different orders, so a sum of `n`
//! products whose magnitudes add up to `S` may differ by up to `n * S * 2^-24` in the worst case
//! and by a few `sqrt(n) * S * 2^-24` in practice. Each constant says which sums it covers.
mod common;
mod golden;

use common::for_each_isa;
use golden::{Golden, Tol, check, max_pool2d_forward};
use simd_cnn::kernels::Kernels;
use simd_cnn::model::{CatDogCnn, Mlp};
use simd_cnn::nn::{MaxPool2d, Param, ReLU, loss};
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::{hwio_to_oihw, nchw_to_nhwc, nhwc_to_nchw, oihw_to_hwio};
use simd_cnn::train::Sgd;

/// Conv2d backward. dL/dx sums `9 * c_out` (45 to 72) products of `r` (unit normal) and
/// weights below 0.2; dL/dW sums `n * h * w` (25 to 126) products of unit normal `x` and `r`,
/// whose magnitudes add up to about 80; dL/db sums as many values of `r`. For the largest of
/// these the worst-case bound is `126 * 2^-24 * 80` = 6e-4, the typical error 5e-5.
const CONV_BACKWARD: Tol = Tol { atol: 5e-5, rtol: 1e-5 };
/// Linear backward. dL/dx sums `out` (7 or 10) products; dL/dW and dL/db sum over the batch
/// (5 or 32 rows): short sums of terms of order 1, whose worst case is `32 * 2^-24 * 32` = 6e-5.
const LINEAR_BACKWARD: Tol = Tol { atol: 1e-5, rtol: 1e-5 };
/// Loss gradients: `(p - target) / n` with `p` from one `exp` (sigmoid) or from `exp` and a
/// sum of 10 terms (softmax): a few ulps of values below 1, divided by the batch size.
const LOSS_GRAD: Tol = Tol { atol: 1e-7, rtol: 1e-5 };
/// Whole networks: logits and loss through five layers, gradients through the whole backward
/// pass. Every layer adds a relative error of a few 1e-6 of the magnitudes it sums (up to
/// 32768 products in fc1, 768 positions in conv1's weight gradient), and later layers carry
/// the earlier errors along, so we allow 1e-4 of each value. Gradients reach 2.7; an element
/// that is small because its terms cancel keeps the error of its terms, hence `atol`.
const NETWORK: Tol = Tol { atol: 1e-6, rtol: 1e-4 };
/// Parameters after one SGD step from our own gradients: `lr` times the gradient error that
/// [`NETWORK`] allows (`0.01 * (1e-6 + 1e-4 * 2.7)` = 3e-6), plus the rounding of the step.
const AFTER_STEP: Tol = Tol { atol: 3e-6, rtol: 2.4e-7 };
/// One SGD step from PyTorch's own gradients: `p - 0.01 * g` is rounded once (fused
/// multiply-add) or twice (product, then difference) on either side. The difference may be
/// off by one ulp of the result, at most `2^-23` of it (`rtol` is `2^-22` for a result next to
/// a power of two), and the product by half an ulp of `0.01 * g`, which stays below 0.027
/// (so 2e-9): that part shows where `p` and `0.01 * g` nearly cancel.
const SGD_STEP: Tol = Tol { atol: 2e-9, rtol: 2.4e-7 };

/// `nn.Conv2d(k=3, padding=1)` backward: dL/dx, dL/dW and dL/db for 3->5 on 2x3x7x9, 16->8 on
/// 1x16x5x5, and 4->6 on 2x4x6x5 followed by ReLU (whose backward our test applies to `r`):
///
/// ```python
/// torch.manual_seed(seed)
/// conv = nn.Conv2d(c_in, c_out, 3, padding=1)  # PyTorch's default init, bias included
/// x = torch.randn(n, c_in, h, w, requires_grad=True)
/// y = torch.relu(conv(x)) if relu else conv(x)
/// r = torch.randn_like(y)
/// (y * r).sum().backward()
/// ```
#[test]
fn conv2d_backward_matches_pytorch() {
    let g = Golden::open("conv2d");
    for_each_isa(|k| {
        for (case, relu) in [("a", false), ("b", false), ("relu", true)] {
            let mut layer = g.conv2d(case);
            let x = g.tensor(&format!("{case}.x"));
            let &[n, c_in, h, w] = x.shape() else { panic!("x is not NCHW") };
            let shape = layer.shape(n, h, w);
            let x = nchw_to_nhwc(&x);
            let mut y = Tensor::zeros(&[n, h, w, layer.c_out()]);
            layer.forward(k, &shape, x.as_slice(), y.as_mut_slice(), relu);
            let mut grad_y = nchw_to_nhwc(&g.tensor(&format!("{case}.r")));
            if relu {
                ReLU.backward(k, y.as_slice(), grad_y.as_mut_slice());
            }
            let mut grad_x = Tensor::zeros(&[n, h, w, c_in]);
            layer.backward(k, &shape, x.as_slice(), grad_y.as_slice(), Some(grad_x.as_mut_slice()));

            let what = |name: &str| format!("{} conv2d {case} {name}", k.isa());
            let want = |name: &str| g.tensor(&format!("{case}.{name}"));
            check(&what("grad_x"), nhwc_to_nchw(&grad_x).as_slice(), want("grad_x").as_slice(), CONV_BACKWARD);
            let grad_w = hwio_to_oihw(&layer.weight.grad);
            check(&what("grad_weight"), grad_w.as_slice(), want("grad_weight").as_slice(), CONV_BACKWARD);
            check(&what("grad_bias"), layer.bias.grad.as_slice(), want("grad_bias").as_slice(), CONV_BACKWARD);
        }
    });
}

/// `nn.MaxPool2d(2)` backward on odd sizes, on random values and on integers with ties, where
/// PyTorch sends each window's gradient to the first maximum in scan order:
///
/// ```python
/// torch.manual_seed(10)
/// random = torch.randn(2, 3, 5, 7)
/// ties = torch.randint(-2, 3, (2, 3, 7, 9)).float()
/// ties[0, 1, 1:5, 2:7] = 1.0
/// # for x in (random, ties):
/// torch.manual_seed(seed)
/// x.requires_grad_(True)
/// y = F.max_pool2d(x, 2)  # nn.MaxPool2d(2)
/// r = torch.randn_like(y)
/// (y * r).sum().backward()
/// ```
///
/// Each input's gradient is one value of `r` or zero, so they must be equal, not just close.
#[test]
fn max_pool2d_backward_matches_pytorch() {
    let g = Golden::open("max_pool2d");
    for_each_isa(|k| {
        for case in ["random", "ties"] {
            let (shape, x, y) = max_pool2d_forward(k, &g.tensor(&format!("{case}.x")));
            let grad_y = nchw_to_nhwc(&g.tensor(&format!("{case}.r")));
            let mut grad_x = Tensor::zeros(x.shape());
            MaxPool2d.backward(k, &shape, x.as_slice(), y.as_slice(), grad_y.as_slice(), grad_x.as_mut_slice(), false);
            let want = g.tensor(&format!("{case}.grad_x"));
            check(
                &format!("{} max_pool2d {case} grad_x", k.isa()),
                nhwc_to_nchw(&grad_x).as_slice(),
                want.as_slice(),
                Tol::EXACT,
            );
        }
    });
}

/// `nn.Linear` backward: dL/dx, dL/dW and dL/db for 5x17 -> 7 and 32x784 -> 10:
///
/// ```python
/// torch.manual_seed(seed)
/// fc = nn.Linear(in_features, out_features)  # PyTorch's default init, bias included
/// x = torch.randn(batch, in_features, requires_grad=True)  # case a
/// x = images_to_float(torch.randint(0, 256, (batch, in_features), dtype=torch.uint8))  # case b
/// y = fc(x)
/// r = torch.randn_like(y)
/// (y * r).sum().backward()
/// ```
#[test]
fn linear_backward_matches_pytorch() {
    let g = Golden::open("linear");
    for_each_isa(|k| {
        for case in ["a", "b"] {
            let want = |name: &str| g.tensor(&format!("{case}.{name}"));
            let mut layer = g.linear(case);
            let x = if case == "b" { g.images("b.pixels") } else { want("x") };
            let batch = x.shape()[0];
            let mut grad_x = vec![0.0; x.len()];
            layer.backward(k, batch, x.as_slice(), want("r").as_slice(), Some(&mut grad_x));

            let what = |name: &str| format!("{} linear {case} {name}", k.isa());
            check(&what("grad_x"), &grad_x, want("grad_x").as_slice(), LINEAR_BACKWARD);
            check(&what("grad_weight"), layer.weight.grad.as_slice(), want("grad_weight").as_slice(), LINEAR_BACKWARD);
            check(&what("grad_bias"), layer.bias.grad.as_slice(), want("grad_bias").as_slice(), LINEAR_BACKWARD);
        }
    });
}

/// ReLU backward, including inputs that are exactly 0 and -0, where PyTorch's gradient is 0:
///
/// ```python
/// torch.manual_seed(30)
/// x = torch.randn(3, 11)
/// x[0, :3] = 0.0  # ReLU's kink: PyTorch's gradient there is 0
/// x[1, 0] = -0.0
/// x.requires_grad_(True)
/// y = torch.relu(x)
/// r = torch.randn_like(y)
/// (y * r).sum().backward()
/// ```
///
/// Each gradient is `r` or zero: they must be equal.
#[test]
fn relu_backward_matches_pytorch() {
    let g = Golden::open("activations");
    for_each_isa(|k| {
        let mut y = g.tensor("relu.x");
        ReLU.forward(k, y.as_mut_slice());
        let mut grad = g.tensor("relu.r");
        ReLU.backward(k, y.as_slice(), grad.as_mut_slice());
        check(&format!("{} relu grad_x", k.isa()), grad.as_slice(), g.tensor("relu.grad_x").as_slice(), Tol::EXACT);
    });
}

/// The gradients of both losses with respect to the logits:
///
/// ```python
/// torch.manual_seed(40)
/// z = torch.cat([3 * torch.randn(6), torch.tensor([0.0, 20.0, -20.0, 60.0, -60.0])]).requires_grad_(True)
/// t = torch.randint(0, 2, (11,)).float()
/// t[-4:] = torch.tensor([0.0, 1.0, 1.0, 0.0])  # large logits both right and wrong
/// bce = F.binary_cross_entropy_with_logits(z, t)  # nn.BCEWithLogitsLoss(), mean
/// bce.backward()
///
/// logits = 2 * torch.randn(6, 10)
/// logits[-1] += 100.0
/// logits.requires_grad_(True)
/// labels = torch.randint(0, 10, (6,))
/// ce = F.cross_entropy(logits, labels)  # nn.CrossEntropyLoss(), mean
/// ce.backward()
/// ```
#[test]
fn loss_gradients_match_pytorch() {
    let g = Golden::open("losses");
    for_each_isa(|k| {
        let isa = k.isa();
        let z = g.tensor("bce.logits");
        let mut grad = vec![0.0; z.len()];
        loss::bce_with_logits(k, z.as_slice(), g.tensor("bce.targets").as_slice(), &mut grad);
        check(&format!("{isa} bce grad"), &grad, g.tensor("bce.grad").as_slice(), LOSS_GRAD);

        let logits = g.tensor("ce.logits");
        let classes = logits.shape()[1];
        let (mut probs, mut grad) = (vec![0.0; logits.len()], vec![0.0; logits.len()]);
        loss::softmax_cross_entropy(k, classes, logits.as_slice(), &g.u8s("ce.labels"), &mut probs, &mut grad);
        check(&format!("{isa} cross-entropy grad"), &grad, g.tensor("ce.grad").as_slice(), LOSS_GRAD);
    });
}

/// A state_dict tensor of PyTorch in our layout: convolution weights (the only 4-D
/// parameters) go from OIHW to HWIO, everything else is already the same.
fn to_ours(t: Tensor) -> Tensor {
    if t.shape().len() == 4 { oihw_to_hwio(&t) } else { t }
}

/// Ours back in PyTorch's layout.
fn to_torch(t: &Tensor) -> Tensor {
    if t.shape().len() == 4 { hwio_to_oihw(t) } else { t.clone() }
}

/// Sets every parameter to the file's `{prefix}.{state_dict name}`, checking the shapes.
fn load_params(g: &Golden, prefix: &str, names: &[&str], params: &mut [&mut Param]) {
    assert_eq!(names.len(), params.len());
    for (name, p) in names.iter().zip(params.iter_mut()) {
        let value = to_ours(g.tensor(&format!("{prefix}.{name}")));
        assert_eq!(value.shape(), p.value.shape(), "{name}: PyTorch's shape differs from ours");
        p.value = value;
    }
}

/// Compares each of `params` (our values, or our gradients with `grads`) with the file's
/// `{prefix}.{state_dict name}`.
fn check_params(what: &str, g: &Golden, prefix: &str, names: &[&str], params: &[&Param], grads: bool, tol: Tol) {
    for (name, p) in names.iter().zip(params) {
        let ours = to_torch(if grads { &p.grad } else { &p.value });
        check(
            &format!("{what} {prefix}.{name}"),
            ours.as_slice(),
            g.tensor(&format!("{prefix}.{name}")).as_slice(),
            tol,
        );
    }
}

/// SGD with lr 0.01 applied to PyTorch's own gradients must give PyTorch's updated parameters
/// to within an ulp: the step alone, whatever our gradients are.
fn check_sgd_step_alone(what: &str, k: &Kernels, g: &Golden, names: &[&str], params: &mut [&mut Param]) {
    load_params(g, "initial", names, params);
    for (name, p) in names.iter().zip(params.iter_mut()) {
        p.grad = to_ours(g.tensor(&format!("grad.{name}")));
    }
    Sgd::new(0.01, 0.0).step(k, params);
    let params: Vec<&Param> = params.iter().map(|p| &**p).collect();
    check_params(&format!("{what} step on torch's grads:"), g, "updated", names, &params, false, SGD_STEP);
}

/// The whole cat/dog CNN at 16x16 with the weights PyTorch initialised: logits, loss, the
/// gradient of every parameter, and the parameters after one SGD step, both from our own
/// gradients and (to test the step alone) from PyTorch's:
///
/// ```python
/// torch.manual_seed(50)
/// cnn = CatDogCnn(16, 16)  # conv1..conv3, fc1 512->128, fc2; He-normal weights, zero biases
/// images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
/// labels = torch.tensor([0.0, 1.0, 1.0])
/// opt = torch.optim.SGD(cnn.parameters(), lr=0.01)
/// logits = cnn(images.float() / 255)
/// loss = F.binary_cross_entropy_with_logits(logits, labels)
/// loss.backward()
/// opt.step()
/// ```
#[test]
fn catdog_cnn_matches_pytorch() {
    let g = Golden::open("catdog_cnn");
    let names = CatDogCnn::PARAM_NAMES;
    let x = nchw_to_nhwc(&g.images("images"));
    let labels = g.tensor("labels");
    for_each_isa(|k| {
        let isa = k.isa();
        let mut model = CatDogCnn::new(16, 16, 0);
        load_params(&g, "initial", &names, &mut model.params_mut());

        let logits = model.forward(k, x.as_slice()).to_vec();
        check(&format!("{isa} cnn logits"), &logits, g.tensor("logits").as_slice(), NETWORK);
        let stats = model.forward_backward(k, x.as_slice(), labels.as_slice());
        check(&format!("{isa} cnn loss"), &[stats.loss], &[g.scalar("loss")], NETWORK);
        check_params(&format!("{isa} cnn"), &g, "grad", &names, &model.params(), true, NETWORK);

        Sgd::new(0.01, 0.0).step(k, &mut model.params_mut());
        check_params(&format!("{isa} cnn"), &g, "updated", &names, &model.params(), false, AFTER_STEP);

        check_sgd_step_alone(&format!("{isa} cnn"), k, &g, &names, &mut model.params_mut());
    });
}

/// The whole MNIST MLP with the weights PyTorch initialised: logits, loss, the gradient of
/// every parameter, and the parameters after one SGD step, both from our own gradients and
/// (to test the step alone) from PyTorch's:
///
/// ```python
/// torch.manual_seed(60)
/// mlp = Mlp()  # fc1 784->128, fc2 128->64, fc3 64->10; He-normal weights, zero biases
/// pixels = torch.randint(0, 256, (5, 784), dtype=torch.uint8)
/// labels = torch.randint(0, 10, (5,))
/// opt = torch.optim.SGD(mlp.parameters(), lr=0.01)
/// logits = mlp(pixels.float() / 255)
/// loss = F.cross_entropy(logits, labels)
/// loss.backward()
/// opt.step()
/// ```
#[test]
fn mnist_mlp_matches_pytorch() {
    let g = Golden::open("mnist_mlp");
    let names = Mlp::PARAM_NAMES;
    let x = g.images("pixels");
    let labels = g.u8s("labels");
    for_each_isa(|k| {
        let isa = k.isa();
        let mut model = Mlp::new(0);
        load_params(&g, "initial", &names, &mut model.params_mut());

        let logits = model.forward(k, x.as_slice()).to_vec();
        check(&format!("{isa} mlp logits"), &logits, g.tensor("logits").as_slice(), NETWORK);
        let stats = model.forward_backward(k, x.as_slice(), &labels);
        check(&format!("{isa} mlp loss"), &[stats.loss], &[g.scalar("loss")], NETWORK);
        check_params(&format!("{isa} mlp"), &g, "grad", &names, &model.params(), true, NETWORK);

        Sgd::new(0.01, 0.0).step(k, &mut model.params_mut());
        check_params(&format!("{isa} mlp"), &g, "updated", &names, &model.params(), false, AFTER_STEP);

        check_sgd_step_alone(&format!("{isa} mlp"), k, &g, &names, &mut model.params_mut());
    });
}
