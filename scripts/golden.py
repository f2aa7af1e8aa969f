#!/usr/bin/env python3
"""Golden vectors: what PyTorch computes for every layer of simd-cnn, and for both networks.

Writes tests/golden/*.safetensors, which tests/ch2_golden.rs (forward passes, loss values) and
tests/ch3_golden.rs (gradients, whole networks, one SGD step) compare the crate against. The
files are committed, so the tests run without PyTorch; this script is only needed to make them
again. From the repository root, with a Python that has torch, numpy and safetensors:

    python scripts/golden.py          # writes tests/golden/*.safetensors
    sha256sum tests/golden/*.safetensors

Everything is float32 in PyTorch's layouts (NCHW activations, OIHW convolution weights,
[out, in] linear weights); the tests convert to the crate's NHWC and HWIO. Images are stored as
uint8 and become float32 as x / 255 on both sides (the division is exact IEEE arithmetic, which
the script checks), which keeps the files small.

Deterministic: fixed seeds, one thread, deterministic algorithms, and `__metadata__` keys in
sorted order (safetensors writes them in hash order, which changes from run to run). Running the
script twice writes byte-identical files. Another CPU may make PyTorch pick other kernels (AVX2
rather than AVX-512, say), which can change the last bits of some values; the tests' tolerances
allow for that.

Each file's `__metadata__` has the script and its version, the torch version and a description.
The layer files take about 240 KB; the two network files most of the 3.4 MB, because the CNN at
16x16 has 159,041 parameters and the MLP 109,386, each stored three times (initial values,
gradients, values after the SGD step).
"""
import json
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save

SCRIPT = "scripts/golden.py"
SCRIPT_VERSION = "1"
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"


# ------------------------------------------------------------------------------------------ files
def sorted_metadata(blob):
    """The same safetensors bytes with the `__metadata__` keys sorted (same length, so the data
    offsets do not move)."""
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= header_len and blob[8 + len(text):8 + header_len].strip() == b"", "header grew"
    return blob[:8] + text.ljust(header_len, b" ") + blob[8 + header_len:]


def write(name, description, tensors):
    """Writes tests/golden/NAME.safetensors atomically (temporary file, fsync, rename)."""
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    metadata = {
        "script": SCRIPT,
        "script_version": SCRIPT_VERSION,
        "torch": torch.__version__,
        "description": description,
    }
    blob = sorted_metadata(save(tensors, metadata=metadata))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.safetensors"
    tmp = path.with_suffix(".safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"{path.relative_to(OUT.parent.parent)}: {len(blob):,} bytes, {len(tensors)} tensors")


def images_to_float(images):
    """uint8 -> float32 in [0, 1], checked to be the correctly rounded x / 255 that Rust computes."""
    x = images.float() / 255
    exact = images.numpy().astype(np.float32) / np.float32(255)
    assert np.array_equal(x.numpy().view(np.uint32), exact.view(np.uint32)), "x / 255 is not exact"
    return x


# ------------------------------------------------------------------------------------- the layers
def conv2d_case(seed, n, c_in, c_out, h, w, relu):
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)  # PyTorch's default init, bias included
    x = torch.randn(n, c_in, h, w, requires_grad=True)
    y = torch.relu(conv(x)) if relu else conv(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    return {"x": x, "weight": conv.weight, "bias": conv.bias, "y": y, "r": r,
            "grad_x": x.grad, "grad_weight": conv.weight.grad, "grad_bias": conv.bias.grad}


def max_pool2d_case(seed, x):
    torch.manual_seed(seed)
    x.requires_grad_(True)
    y = F.max_pool2d(x, 2)  # nn.MaxPool2d(2)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    return {"x": x, "y": y, "r": r, "grad_x": x.grad}


def linear(seed, batch, in_features, out_features, images=False):
    torch.manual_seed(seed)
    fc = nn.Linear(in_features, out_features)  # PyTorch's default init, bias included
    if images:
        pixels = torch.randint(0, 256, (batch, in_features), dtype=torch.uint8)
        x = images_to_float(pixels).requires_grad_(True)
    else:
        x = torch.randn(batch, in_features, requires_grad=True)
    y = fc(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    case = {"weight": fc.weight, "bias": fc.bias, "y": y, "r": r,
            "grad_x": x.grad, "grad_weight": fc.weight.grad, "grad_bias": fc.bias.grad}
    case.update({"pixels": pixels} if images else {"x": x})
    return case


def flat(prefix, case):
    return {f"{prefix}.{k}": v for k, v in case.items()}


def layers():
    write("conv2d", "Conv2d(k=3, padding=1, bias) forward and backward, loss (y * r).sum(): "
          "a 3->5 on 2x3x7x9, b 16->8 on 1x16x5x5, relu 4->6 on 2x4x6x5 followed by ReLU",
          flat("a", conv2d_case(1, 2, 3, 5, 7, 9, relu=False))
          | flat("b", conv2d_case(2, 1, 16, 8, 5, 5, relu=False))
          | flat("relu", conv2d_case(3, 2, 4, 6, 6, 5, relu=True)))

    torch.manual_seed(10)
    random = torch.randn(2, 3, 5, 7)
    # Integers in [-2, 2] tie often, and a flat 4x5 patch ties in every window it covers.
    ties = torch.randint(-2, 3, (2, 3, 7, 9)).float()
    ties[0, 1, 1:5, 2:7] = 1.0
    write("max_pool2d", "MaxPool2d(2) forward and backward, loss (y * r).sum(), odd sizes: "
          "random 2x3x5x7; ties 2x3x7x9 of integers in [-2, 2] with a flat patch, where "
          "PyTorch sends each window's gradient to its first maximum in scan order",
          flat("random", max_pool2d_case(11, random)) | flat("ties", max_pool2d_case(12, ties)))

    write("linear", "Linear forward and backward, loss (y * r).sum(): a 5x17 -> 7 (randn input), "
          "b 32x784 -> 10 (uint8 pixels / 255 as input)",
          flat("a", linear(20, 5, 17, 7)) | flat("b", linear(21, 32, 784, 10, images=True)))

    torch.manual_seed(30)
    x = torch.randn(3, 11)
    x[0, :3] = 0.0  # ReLU's kink: PyTorch's gradient there is 0
    x[1, 0] = -0.0
    x.requires_grad_(True)
    y = torch.relu(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    relu = {"x": x, "y": y, "r": r, "grad_x": x.grad}

    s = torch.cat([4 * torch.randn(13), torch.tensor([0.0, -0.0, 15.0, -15.0, 88.0, -88.0, 100.0, -100.0])])
    sigmoid = {"x": s, "y": torch.sigmoid(s)}

    softmax = {}
    for name, rows, cols in [("a", 4, 10), ("b", 3, 17), ("c", 2, 1)]:
        z = 3 * torch.randn(rows, cols)
        z[-1] += 100.0  # exp(100) overflows float32: the row maximum must be subtracted first
        softmax |= {f"softmax_{name}.x": z, f"softmax_{name}.y": torch.softmax(z, dim=1)}
    write("activations", "ReLU forward and backward (with exact zeros); Sigmoid on randn * 4 and "
          "large magnitudes; Softmax over rows (4x10, 3x17, 2x1), the last row shifted by +100",
          flat("relu", relu) | flat("sigmoid", sigmoid) | softmax)

    torch.manual_seed(40)
    z = torch.cat([3 * torch.randn(6), torch.tensor([0.0, 20.0, -20.0, 60.0, -60.0])]).requires_grad_(True)
    t = torch.randint(0, 2, (11,)).float()
    t[-4:] = torch.tensor([0.0, 1.0, 1.0, 0.0])  # large logits both right and wrong
    bce = F.binary_cross_entropy_with_logits(z, t)  # nn.BCEWithLogitsLoss(), mean
    bce.backward()

    logits = 2 * torch.randn(6, 10)
    logits[-1] += 100.0
    logits.requires_grad_(True)
    labels = torch.randint(0, 10, (6,))
    ce = F.cross_entropy(logits, labels)  # nn.CrossEntropyLoss(), mean
    ce.backward()
    write("losses", "BCEWithLogitsLoss (mean) on 11 logits with 0/1 targets; CrossEntropyLoss "
          "(mean) on 6x10 logits, the last row shifted by +100; values and gradients w.r.t. the logits",
          {"bce.logits": z, "bce.targets": t, "bce.loss": bce, "bce.grad": z.grad,
           "ce.logits": logits, "ce.labels": labels.to(torch.uint8), "ce.loss": ce, "ce.grad": logits.grad})


# ----------------------------------------------------------------------------------- the networks
# ANCHOR: catdog_cnn
class CatDogCnn(nn.Module):
    """The network of anchors/torch_cnn.py, for h x w images, with state_dict names conv1..fc2."""

    def __init__(self, h, w):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc1 = nn.Linear(128 * (h // 8) * (w // 8), 128)
        self.fc2 = nn.Linear(128, 1)
        he_normal_zero_bias(self)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv3(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x).squeeze(1)
# ANCHOR_END: catdog_cnn


class Mlp(nn.Module):
    """The MNIST network of anchors/torch_mlp.py: 784-128-64-10."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)
        he_normal_zero_bias(self)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def he_normal_zero_bias(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def train_step(model, loss_fn, x, target):
    """One SGD step (lr 0.01); returns the tensors to store, named after the state_dict."""
    initial = {f"initial.{k}": v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    opt.zero_grad()
    logits = model(x)
    loss = loss_fn(logits, target)
    loss.backward()
    grads = {f"grad.{k}": p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    updated = {f"updated.{k}": v.clone() for k, v in model.state_dict().items()}
    return {"logits": logits, "loss": loss} | initial | grads | updated


def networks():
    torch.manual_seed(50)
    cnn = CatDogCnn(16, 16)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0.0, 1.0, 1.0])
    step = train_step(cnn, F.binary_cross_entropy_with_logits, images_to_float(images), labels)
    write("catdog_cnn", "the cat/dog CNN of anchors/torch_cnn.py at 16x16 (fc1 512->128), He-normal "
          "weights and zero biases, batch 3 of uint8 images / 255 (NCHW), BCEWithLogitsLoss: "
          "logits, loss, initial parameters, their gradients, and the parameters after one "
          "SGD step with lr 0.01",
          {"images": images, "labels": labels} | step)

    torch.manual_seed(60)
    mlp = Mlp()
    pixels = torch.randint(0, 256, (5, 784), dtype=torch.uint8)
    labels = torch.randint(0, 10, (5,))
    step = train_step(mlp, F.cross_entropy, images_to_float(pixels), labels)
    write("mnist_mlp", "the MNIST MLP 784-128-64-10 of anchors/torch_mlp.py, He-normal weights and "
          "zero biases, batch 5 of uint8 pixels / 255, CrossEntropyLoss: logits, loss, initial "
          "parameters, their gradients, and the parameters after one SGD step with lr 0.01",
          {"pixels": pixels, "labels": labels.to(torch.uint8)} | step)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    layers()
    networks()


if __name__ == "__main__":
    main()
