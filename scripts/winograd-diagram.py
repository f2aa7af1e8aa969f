#!/usr/bin/env python3
"""Chapter 10's diagram: the data flow of one fused block of Winograd tiles, in the house style
of scripts/make-diagrams.py (whose Svg class it uses). Run from anywhere:
`python3 scripts/winograd-diagram.py` rewrites book/src/diagrams/winograd-block.svg."""

import importlib.util
import os

spec = importlib.util.spec_from_file_location(
    "make_diagrams", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-diagrams.py"))
d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d)


def winograd_block():
    s = d.Svg(1010, 540, "One fused block of F(4x4,3x3) tiles: input transform, 36 products, output transform")
    s.title_text("One block of F(4x4, 3x3) tiles (conv3 on Zen 5: 18 tiles, 64 -> 128 channels)")

    # The input: an image with its 4x4 output tiles and one 6x6 patch.
    ox, oy, cell = 30, 70, 15
    s.text(ox, oy - 12, "input [n, h, w, c_in] (NHWC)", weight="bold")
    for i in range(9):
        for j in range(9):
            s.rect(ox + j * cell, oy + i * cell, cell, cell, fill=d.LIGHT, stroke=d.GREY, sw=0.6)
    s.rect(ox + 3 * cell, oy + 3 * cell, 6 * cell, 6 * cell, fill=d.SKY, op=0.35, stroke=d.BLUE, sw=2)
    s.rect(ox + 4 * cell, oy + 4 * cell, 4 * cell, 4 * cell, fill="none", stroke=d.VERM, sw=2, dash="4 3")
    s.text(ox, oy + 9 * cell + 20, "6x6 patch (blue) per 4x4 output tile (red),", size=12)
    s.text(ox, oy + 9 * cell + 36, "overlapping its neighbours by 2 pixels;", size=12)
    s.text(ox, oy + 9 * cell + 52, "read from memory, prefetched 2 tiles ahead", size=12)

    # V
    vx, vy = 250, 80
    s.line(ox + 9 * cell + 8, oy + 60, vx - 8, vy + 50, arrow=True)
    s.text((ox + 9 * cell + vx) / 2 + 4, oy + 28, "input", anchor="middle", size=12)
    s.text((ox + 9 * cell + vx) / 2 + 4, oy + 48, "Bt d B", anchor="middle", mono=True, weight="bold")
    for k in range(5):
        s.rect(vx + 6 * k, vy - 6 * k, 110, 100, fill=d.SKY, op=0.5, stroke=d.BLUE, sw=1.2)
    s.text(vx + 80, vy + 125, "V [36, tiles, c_in]", anchor="middle", mono=True)
    s.text(vx + 80, vy + 143, "166 KB, in L2", anchor="middle", size=12)

    # U
    ux, uy = 440, 290
    for k in range(5):
        s.rect(ux + 6 * k, uy - 6 * k, 110, 80, fill=d.ORANGE, op=0.45, stroke=d.ORANGE, sw=1.2)
    s.text(ux + 70, uy + 102, "U [36, c_in, c_out]", anchor="middle", mono=True)
    s.text(ux + 70, uy + 120, "G g Gt, once per call (f64);", anchor="middle", size=12)
    s.text(ux + 70, uy + 136, "1.2 MB for conv3: a 16 KB slice", anchor="middle", size=12)
    s.text(ux + 70, uy + 152, "per product stays in L1", anchor="middle", size=12)

    # products
    px, py = 450, 100
    s.rect(px, py, 130, 90, fill=d.GREEN, op=0.25, stroke=d.GREEN, sw=2, rx=6)
    s.text(px + 65, py + 28, "36 products", anchor="middle", weight="bold")
    s.text(px + 65, py + 48, "[tiles x c_in] x", anchor="middle", size=12, mono=True)
    s.text(px + 65, py + 64, "[c_in x c_out]", anchor="middle", size=12, mono=True)
    s.text(px + 65, py + 82, "6 x 4 register tiles", anchor="middle", size=12)
    s.line(vx + 145, vy + 40, px - 6, py + 40, arrow=True)
    s.line(ux + 60, uy - 32, px + 65, py + 96, arrow=True)

    # M
    mx, my = 640, 80
    s.line(px + 136, py + 40, mx - 8, my + 45, arrow=True)
    for k in range(5):
        s.rect(mx + 6 * k, my - 6 * k, 110, 100, fill=d.GREEN, op=0.35, stroke=d.GREEN, sw=1.2)
    s.text(mx + 80, my + 125, "M [36, tiles, c_out]", anchor="middle", mono=True)
    s.text(mx + 80, my + 143, "332 KB, in L2", anchor="middle", size=12)

    # output
    qx, qy = 880, 90
    s.line(mx + 145, my + 40, qx - 8, qy + 40, arrow=True)
    s.text((mx + 145 + qx) / 2, my + 18, "output", anchor="middle", size=12)
    s.text((mx + 145 + qx) / 2, my + 36, "At M A", anchor="middle", mono=True, weight="bold")
    for i in range(4):
        for j in range(4):
            s.rect(qx + j * 24, qy + i * 24, 24, 24, fill=d.VERM, op=0.25, stroke=d.VERM, sw=1)
    s.text(qx + 48, qy + 118, "+ bias, ReLU", anchor="middle", size=12)
    s.text(qx + 48, qy + 134, "4x4 pixels stored,", anchor="middle", size=12)
    s.text(qx + 48, qy + 150, "cut at the image edge", anchor="middle", size=12)

    s.text(30, 500, "Per block: transform every tile's patch into V, run the 36 products into M, transform M back "
           "into output pixels.", size=12)
    s.text(30, 518, "V and M are reused by the next block. Sizes for the 512 KB budget in Zen 5's 1 MB L2 "
           "(conv2: 36 tiles of 32 -> 64 channels, the same 166 and 332 KB).", size=12)
    s.save("winograd-block.svg")


if __name__ == "__main__":
    winograd_block()
