#!/usr/bin/env python3
"""PyTorch's training step of the book's cat/dog CNN, timed: the figure chapters 6 and 8 compare
with `cargo bench --bench train_step -- threads`.

The same network (conv 3->32->64->128, 3x3, padding 1, each with ReLU and a 2x2 max-pool, Linear
32768->128, ReLU, Linear 128->1, binary cross-entropy on the logit), the same step (a batch of 16
images of 128x128 converted from bytes to [0, 1], forward, loss, backward, plain SGD with lr
0.01) on random bytes, so that no data set is needed.

    python3 scripts/torch_step.py --threads 1 --channels-last
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 python3 scripts/torch_step.py ...

PyTorch's own CPU tuning guide recommends channels-last tensors and tcmalloc (Debian:
`apt-get install libtcmalloc-minimal4`); together they were PyTorch's fastest configuration on
our machine, and the one we compare with. Run it in the same sitting as our benchmark and compare
ratios: on a shared machine, absolute figures from different hours differ.
"""

import argparse
import time

import torch
from torch import nn


def build_model():
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32), *block(32, 64), *block(64, 128),
        nn.Flatten(), nn.Linear(128 * 16 * 16, 128), nn.ReLU(), nn.Linear(128, 1),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--channels-last", action="store_true", help="NHWC tensors, as PyTorch recommends on CPU")
    ap.add_argument("--steps", type=int, default=150, help="timed steps (default 150)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = build_model().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    # A batch as a loader hands it over: bytes, [B, H, W, C].
    images = torch.randint(0, 256, (args.batch, 128, 128, 3), dtype=torch.uint8)
    labels = (torch.arange(args.batch) % 2).float()

    def step():
        x = (images.permute(0, 3, 1, 2).float() / 255.0).contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x).squeeze(1), labels)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    layout = "channels-last" if args.channels_last else "NCHW"
    print(f"PyTorch {torch.__version__}, {args.threads} thread(s), {layout}, batch {args.batch}: "
          f"{args.steps * args.batch / seconds:.1f} images/s ({1e3 * seconds / args.steps:.1f} ms per step)")


if __name__ == "__main__":
    main()
