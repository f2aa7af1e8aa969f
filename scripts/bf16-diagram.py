#!/usr/bin/env python3
"""Chapter 11's diagrams, in the house style of scripts/make-diagrams.py (whose Svg class they
use). Run from anywhere: `python3 scripts/bf16-diagram.py` rewrites
book/src/diagrams/bf16-bits.svg (the bits of bf16 against fp32's) and
book/src/diagrams/bf16-pairs.svg (what one vdpbf16ps does with a pair of input channels)."""

import importlib.util
import os

spec = importlib.util.spec_from_file_location(
    "make_diagrams", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-diagrams.py"))
d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d)

CELL = 22


def bits(s, x, y, fields, label):
    """One format as a row of bit cells, most significant bit first: fields are
    (name, width, colour)."""
    s.text(x - 12, y + CELL * 0.7, label, anchor="end", weight="bold")
    at = x
    for name, width, colour in fields:
        for _ in range(width):
            s.rect(at, y, CELL, CELL, fill=colour, op=0.45, stroke=d.INK, sw=0.8)
            at += CELL
        s.text(at - width * CELL / 2, y + CELL + 16, f"{name} ({width})", anchor="middle", size=12)
    return at


def bf16_bits():
    s = d.Svg(960, 300, "The bits of fp32 and bf16: bf16 is the top half of fp32")
    s.title_text("fp32 and bf16: the same sign and exponent, 23 or 7 stored significand bits")
    x0 = 110
    end = bits(s, x0, 70, [("sign", 1, d.VERM), ("exponent", 8, d.BLUE), ("significand", 23, d.GREEN)], "fp32")
    bits(s, x0, 170, [("sign", 1, d.VERM), ("exponent", 8, d.BLUE), ("significand", 7, d.GREEN)], "bf16")
    cut = x0 + 16 * CELL
    s.line(cut, 55, cut, 200, stroke=d.VERM, sw=2, dash="5 4")
    s.text(cut + 8, 52, "bf16 keeps the 16 bits left of this line,", size=12)
    s.text(cut + 8, 140, "the 16 on the right are rounded away (to nearest, ties to even)", size=12)
    s.rect(cut, 70, end - cut, CELL, fill="none", stroke=d.VERM, sw=2)
    s.text(30, 250, "Range: the same 8 exponent bits, so the same 1e-38 to 3e38. Precision: 8 significant bits "
           "(7 stored + 1 implicit)", size=12)
    s.text(30, 268, "against 24: one rounding changes a value by at most 2^-8 = 0.4 % of it (fp32: 2^-24 = "
           "0.000006 %).", size=12)
    s.save("bf16-bits.svg")


def bf16_pairs():
    s = d.Svg(960, 330, "One vdpbf16ps in the forward convolution: pairs of input channels")
    s.title_text("One vdpbf16ps: 16 fp32 sums, each adding the products of one pair of input channels")
    x0, y0, w = 150, 70, 24
    s.text(x0 - 12, y0 + 16, "weights (bf16)", anchor="end", weight="bold", size=12)
    s.text(x0 - 12, y0 + 76, "input (bf16)", anchor="end", weight="bold", size=12)
    s.text(x0 - 12, y0 + 176, "sums (fp32)", anchor="end", weight="bold", size=12)
    for i in range(16):
        x = x0 + i * 2 * w
        s.rect(x, y0, w, w, fill=d.ORANGE, op=0.5, stroke=d.INK, sw=0.8)
        s.rect(x + w, y0, w, w, fill=d.ORANGE, op=0.25, stroke=d.INK, sw=0.8)
        s.rect(x, y0 + 60, w, w, fill=d.SKY, op=0.5, stroke=d.INK, sw=0.8)
        s.rect(x + w, y0 + 60, w, w, fill=d.SKY, op=0.25, stroke=d.INK, sw=0.8)
        s.rect(x, y0 + 160, 2 * w, w, fill=d.GREEN, op=0.35, stroke=d.INK, sw=0.8)
        if i < 2 or i == 15:
            s.line(x + w, y0 + 88, x + w, y0 + 154, arrow=True, sw=1)
    s.text(x0 + w / 2, y0 - 8, "w[ci]", anchor="middle", size=11, mono=True)
    s.text(x0 + 1.5 * w, y0 - 8, "w[ci+1]", anchor="middle", size=11, mono=True)
    s.text(x0 + 2 * w + w, y0 - 8, "... of output channel co (16 of them, one per 32-bit lane)", size=11)
    s.text(x0 + w, y0 + 58 + 40, "x[ci] x[ci+1]: one pixel's pair, broadcast to all 16 lanes", size=11)
    s.text(x0 + w, y0 + 210, "acc[co] += w[ci] x[ci] + w[ci+1] x[ci+1]   (products exact, sums rounded to fp32)",
           size=12, mono=True)
    s.text(30, 305, "Backward-input pairs output channels the same way; the weight gradient pairs two "
           "neighbouring pixels. Odd counts get a zero partner.", size=12)
    s.save("bf16-pairs.svg")


if __name__ == "__main__":
    bf16_bits()
    bf16_pairs()
