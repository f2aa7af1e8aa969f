#!/usr/bin/env python3
"""NumPy's training step of the book's cat/dog CNN, timed: the NumPy row of the introduction's
comparison, which `scripts/compare-frameworks.sh` measures in one sitting with ours and PyTorch's.

The same network and step as `scripts/torch_step.py` (conv 3->32->64->128, 3x3, padding 1, ReLU,
2x2 max-pool; Linear 32768->128, ReLU, Linear 128->1; binary cross-entropy on the logit; a batch
of 16 images of 128x128 converted from bytes; plain SGD, lr 0.01) on random bytes, written the
way a NumPy programmer would make it fast: NHWC float32 arrays, each convolution as one im2col
(a strided view, copied) and one matrix product in BLAS, the backward passes as matrix products
too.

    python3 scripts/numpy_step.py --threads 1

`--threads` sets the BLAS library's thread count; it must be set before NumPy is imported, so
the script does it first. Some machines set OPENBLAS_CORETYPE to work around old OpenBLAS builds,
which slows a current one: compare-frameworks.sh unsets it for this command alone.
"""

import argparse
import os
import sys
import time


def threads_from_argv():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


_T = threads_from_argv()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[var] = _T

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

F32 = np.float32


def he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)


class CatDogCnn:
    """Convolution weights as matrices [9 * c_in, c_out], rows in (ky, kx, c_in) order."""

    CHANNELS = [(3, 32), (32, 64), (64, 128)]

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.p = {}
        for i, (ci, co) in enumerate(self.CHANNELS):
            self.p[f"conv{i}.w"] = he(rng, (9 * ci, co), 9 * ci)
            self.p[f"conv{i}.b"] = np.zeros(co, F32)
        self.p["fc1.w"] = he(rng, (32768, 128), 32768)
        self.p["fc1.b"] = np.zeros(128, F32)
        self.p["fc2.w"] = he(rng, (128, 1), 128)
        self.p["fc2.b"] = np.zeros(1, F32)

    @staticmethod
    def im2col(x):
        n, h, w, c = x.shape
        padded = np.zeros((n, h + 2, w + 2, c), F32)
        padded[:, 1:h + 1, 1:w + 1, :] = x
        s = padded.strides
        view = as_strided(padded, shape=(n, h, w, 3, 3, c), strides=(s[0], s[1], s[2], s[1], s[2], s[3]))
        return view.reshape(n * h * w, 9 * c)  # the copy

    @staticmethod
    def col2im(dcols, n, h, w, c):
        d = dcols.reshape(n, h, w, 3, 3, c)
        dpadded = np.zeros((n, h + 2, w + 2, c), F32)
        for ky in range(3):
            for kx in range(3):
                dpadded[:, ky:ky + h, kx:kx + w, :] += d[:, :, :, ky, kx, :]
        return dpadded[:, 1:h + 1, 1:w + 1, :]

    @staticmethod
    def pool_relu_backward(windows, pooled, dp):
        # The gradient goes to the first maximum of each 2x2 window; a window cut by the ReLU
        # (maximum 0) gets nothing.
        dp = np.where(pooled > 0, dp, F32(0))
        out = np.zeros_like(windows)
        taken = np.zeros(pooled.shape, bool)
        for a in (0, 1):
            for b in (0, 1):
                first = (windows[:, :, a, :, b, :] == pooled) & ~taken
                out[:, :, a, :, b, :] = np.where(first, dp, F32(0))
                taken |= first
        return out

    def train_step(self, x, y, lr):
        n = x.shape[0]
        kept = []
        for i in range(3):
            _, h, w, c = x.shape
            cols = self.im2col(x)
            z = cols @ self.p[f"conv{i}.w"]
            z += self.p[f"conv{i}.b"]
            np.maximum(z, 0, out=z)
            windows = z.reshape(n, h // 2, 2, w // 2, 2, z.shape[1])
            x = windows.max(axis=(2, 4))
            kept.append((cols, windows, x, (h, w, c)))
        flat = x.reshape(n, -1)
        hidden = flat @ self.p["fc1.w"]
        hidden += self.p["fc1.b"]
        np.maximum(hidden, 0, out=hidden)
        logit = (hidden @ self.p["fc2.w"] + self.p["fc2.b"])[:, 0]
        dz = ((1.0 / (1.0 + np.exp(-logit)) - y) / n).astype(F32)[:, None]
        g = {"fc2.w": hidden.T @ dz, "fc2.b": dz.sum(0)}
        dh = (dz @ self.p["fc2.w"].T) * (hidden > 0)
        g["fc1.w"] = flat.T @ dh
        g["fc1.b"] = dh.sum(0)
        dx = (dh @ self.p["fc1.w"].T).reshape(x.shape)
        for i in (2, 1, 0):
            cols, windows, pooled, (h, w, c) = kept[i]
            dy = self.pool_relu_backward(windows, pooled, dx).reshape(n * h * w, -1)
            g[f"conv{i}.w"] = cols.T @ dy
            g[f"conv{i}.b"] = dy.sum(0)
            if i > 0:
                dx = self.col2im(dy @ self.p[f"conv{i}.w"].T, n, h, w, c)
        for k, v in g.items():
            self.p[k] -= F32(lr) * v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    net = CatDogCnn(0)
    images = rng.integers(0, 256, size=(args.batch, 128, 128, 3), dtype=np.uint8)
    labels = (np.arange(args.batch) % 2).astype(F32)

    def step():
        net.train_step(images.astype(F32) * F32(1.0 / 255.0), labels, 0.01)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(f"NumPy {np.__version__}, {args.threads} thread(s), im2col + BLAS, batch {args.batch}: "
          f"{args.steps * args.batch / seconds:.1f} images/s ({1e3 * seconds / args.steps:.1f} ms per step)")


if __name__ == "__main__":
    main()
