#!/usr/bin/env python3
"""The explanatory diagrams of the book, written as plain SVG.

Run from anywhere: `python3 scripts/make-diagrams.py` rewrites every SVG in
book/src/diagrams/. No dependencies beyond the Python standard library. One style for all of them: the
Okabe-Ito palette of the benchmark charts, sans-serif text, 1.5 px outlines, and a white
background so that they read in the dark themes too."""

import math
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "book", "src", "diagrams")

INK = "#222222"
BLUE = "#0072B2"; ORANGE = "#E69F00"; SKY = "#56B4E9"; GREEN = "#009E73"
VERM = "#D55E00"; PURPLE = "#CC79A7"; YELLOW = "#F0E442"; GREY = "#8C8C8C"
LIGHT = "#F4F4F4"

def esc(t):
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

class Svg:
    def __init__(self, w, h, title):
        self.w, self.h, self.title = w, h, title
        self.parts = []
    def add(self, s):
        self.parts.append(s)
    def rect(self, x, y, w, h, fill="none", stroke=INK, sw=1.5, op=1.0, rx=0, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        fo = f' fill-opacity="{op}"' if op != 1.0 else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" fill="{fill}"{fo} stroke="{stroke}" stroke-width="{sw}"{d}/>')
    def line(self, x1, y1, x2, y2, stroke=INK, sw=1.5, dash=None, arrow=False):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        m = ' marker-end="url(#arrow)"' if arrow else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{sw}"{d}{m}/>')
    def path(self, d, stroke=INK, sw=1.5, fill="none", dash=None, arrow=False):
        da = f' stroke-dasharray="{dash}"' if dash else ""
        m = ' marker-end="url(#arrow)"' if arrow else ""
        self.add(f'<path d="{d}" stroke="{stroke}" stroke-width="{sw}" fill="{fill}"{da}{m}/>')
    def text(self, x, y, t, size=13, anchor="start", fill=INK, weight="normal", mono=False, italic=False, rotate=None):
        fam = ' font-family="monospace"' if mono else ""
        it = ' font-style="italic"' if italic else ""
        wt = f' font-weight="{weight}"' if weight != "normal" else ""
        rot = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{fam}{it}{wt}{rot}>{esc(t)}</text>')
    def title_text(self, t):
        self.text(self.w / 2, 26, t, size=16, anchor="middle", weight="bold")
    def render(self):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="sans-serif" font-size="13">\n'
                f'<title>{esc(self.title)}</title>\n'
                '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222222"/></marker></defs>\n'
                f'<rect x="0" y="0" width="{self.w}" height="{self.h}" fill="#FFFFFF"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"
    def save(self, name):
        with open(os.path.join(HERE, name), "w") as f:
            f.write(self.render())


def register_tile():
    s = Svg(760, 580, "A register tile of the convolution: 6 pixels by 4 vectors of output channels")
    s.title_text("A register tile: P = 6 output pixels × C = 4 vectors of 16 output channels")
    X0, CW, GAP = 230, 118, 10     # grid columns
    Y0, RH, RG = 150, 34, 12       # grid rows
    def lanes(x, y, w, h, color):
        # 16 lanes, drawn as ticks along the bottom edge so that they do not cross the label
        for i in range(1, 16):
            xx = x + w * i / 16
            s.line(xx, y + h - 7, xx, y + h, stroke=color, sw=0.8)
    # weight vectors
    s.text(X0 + 2 * (CW + GAP) - GAP / 2, 58, "4 weight vectors, loaded: tap (ky, kx), input channel c, 64 output channels", anchor="middle", size=12.5)
    for v in range(4):
        x = X0 + v * (CW + GAP)
        s.rect(x, 70, CW, RH, fill=ORANGE, op=0.22, stroke=ORANGE)
        lanes(x, 70, CW, RH, ORANGE)
        s.text(x + CW / 2, 70 + RH / 2 + 5, f"w[v={v}]: ch {16*v}–{16*v+15}", anchor="middle", size=12, weight="bold")
        s.line(x + CW / 2, 70 + RH + 2, x + CW / 2, Y0 - 6, stroke=ORANGE, sw=1.5, arrow=True)
    # broadcasts and accumulators
    s.text(115, Y0 - 14, "6 input values, broadcast", anchor="middle", size=12.5)
    for p in range(6):
        y = Y0 + p * (RH + RG)
        s.rect(40, y, 150, RH, fill=SKY, op=0.25, stroke=BLUE)
        lanes(40, y, 150, RH, BLUE)
        s.text(115, y + RH / 2 + 5, f"x[pixel {p}, c], 16 lanes", anchor="middle", size=12, weight="bold")
        s.line(192, y + RH / 2, X0 - 6, y + RH / 2, stroke=BLUE, sw=1.5, arrow=True)
        for v in range(4):
            x = X0 + v * (CW + GAP)
            s.rect(x, y, CW, RH, fill=GREEN, op=0.18, stroke=GREEN)
            lanes(x, y, CW, RH, GREEN)
            s.text(x + CW / 2, y + RH / 2 + 5, f"acc[{p}][{v}]", anchor="middle", size=12.5, mono=True, weight="bold")
    gy = Y0 + 6 * (RH + RG) - RG
    s.text(X0 + 2 * (CW + GAP) - GAP / 2, gy + 20, "24 accumulators: 6 pixels of one output row × 64 output channels, each register 16 lanes",
           anchor="middle", size=12.5)
    # explanation
    ty = gy + 56
    lines = [
        ("One step of the loop (one tap, one input channel c):", True),
        ("load 4 weight vectors, broadcast 6 input values, then 24 FMAs   acc[p][v] += x[p] · w[v]", False),
        ("Each weight vector is used 6 times and each broadcast 4 times: (6 + 4) / 24 = 0.42 loads per multiply-add.", False),
        ("Registers: 24 accumulators + 4 weight vectors + 1 broadcast = 29 of the 32 zmm registers (AVX-512, conv2 and conv3).", False),
        ("The accumulators stay in registers for the whole sum, 9 taps × c_in channels, and are stored once at the end.", False),
        ("(The broadcasts take turns in one register; they are drawn six times to show which row each one feeds.)", False),
    ]
    for i, (t, b) in enumerate(lines):
        s.text(40, ty + i * 21, t, size=13, weight="bold" if b else "normal")
    s.save("register-tile.svg")


def nchw_nhwc():
    s = Svg(760, 470, "NCHW and NHWC: the same 2x2 RGB image in memory")
    s.title_text("NCHW and NHWC: one 2 × 2 RGB image, twelve floats in memory")
    sub = {"0": "₀", "1": "₁"}
    COL = {"R": VERM, "G": GREEN, "B": BLUE}
    def name(c, y, x):
        return c + sub[str(y)] + sub[str(x)]
    # the image as three planes, side by side
    CS = 36
    for k, c in enumerate("RGB"):
        ox, oy = 40 + 96 * k, 70
        for y in range(2):
            for x in range(2):
                s.rect(ox + x * CS, oy + y * CS, CS, CS, fill=COL[c], op=0.25, stroke=COL[c])
                s.text(ox + x * CS + CS / 2, oy + y * CS + CS / 2 + 5, name(c, y, x), anchor="middle", size=13, weight="bold")
        s.text(ox + CS, oy + 2 * CS + 18, "channel " + c, anchor="middle", size=12)
    s.text(330, 86, "Four axes: image (N), channel (C), row (H), column (W).", size=13)
    s.text(330, 108, "Row-major storage leaves one choice: their order.", size=13)
    s.text(330, 136, "Here N = 1, C = 3 (red, green, blue), H = W = 2.", size=13)
    # memory strips
    X0, W = 130, 50
    def strip(y, label, order, strides):
        s.text(X0 - 12, y + 24, label, anchor="end", size=14, weight="bold")
        s.text(X0 - 12, y + 42, strides, anchor="end", size=11, fill="#555555", mono=True)
        for i, (c, yy, xx) in enumerate(order):
            s.rect(X0 + i * W, y, W, 36, fill=COL[c], op=0.25, stroke=COL[c])
            s.text(X0 + i * W + W / 2, y + 23, name(c, yy, xx), anchor="middle", size=13, weight="bold")
        for i in range(12):
            s.text(X0 + i * W + W / 2, y - 6, str(i), anchor="middle", size=10.5, fill="#555555")
    def brace(x1, x2, y, text, below=True):
        d = 8 if below else -8
        s.path(f"M{x1+2},{y} L{x1+2},{y+d} L{x2-2},{y+d} L{x2-2},{y}", stroke=INK, sw=1.2)
        s.text((x1 + x2) / 2, y + d + (16 if below else -6), text, anchor="middle", size=12.5)
    nchw = [(c, y, x) for c in "RGB" for y in range(2) for x in range(2)]
    nhwc = [(c, y, x) for y in range(2) for x in range(2) for c in "RGB"]
    s.text(X0 + 6 * W, 205, "offset in memory →", anchor="middle", size=11, fill="#555555")
    strip(228, "NCHW", nchw, "[CHW, HW, W, 1]")
    brace(X0, X0 + 4 * W, 266, "channel R: a whole H × W plane")
    brace(X0 + 4 * W, X0 + 8 * W, 266, "channel G")
    brace(X0 + 8 * W, X0 + 12 * W, 266, "channel B")
    strip(338, "NHWC", nhwc, "[HWC, WC, C, 1]")
    brace(X0, X0 + 3 * W, 376, "pixel (0, 0): its C channels")
    brace(X0 + 3 * W, X0 + 6 * W, 376, "pixel (0, 1)")
    brace(X0 + 6 * W, X0 + 9 * W, 376, "pixel (1, 0)")
    brace(X0 + 9 * W, X0 + 12 * W, 376, "pixel (1, 1)")
    s.text(40, 438, "The reference oracle uses NCHW, as PyTorch documents its operators. The kernels use NHWC: a pixel's channels",
           size=12.5)
    s.text(40, 456, "are contiguous, so one vector load takes 4, 8 or 16 of them (conv2's 32 input channels: 128 bytes, two cache lines).",
           size=12.5)
    s.save("nchw-nhwc.svg")


def backward_input_flip():
    s = Svg(760, 545, "The input gradient of a convolution: the kernel turned by 180 degrees, channels swapped")
    s.title_text("Backward-input is a convolution: the kernel turned 180°, its channels swapped")
    L = "abcdefghi"
    CS = 40
    def grid(ox, oy, labels, color, head, caption1, caption2):
        s.text(ox + 1.5 * CS, oy - 12, head, anchor="middle", size=13.5, weight="bold")
        for r in range(3):
            for c in range(3):
                s.rect(ox + c * CS, oy + r * CS, CS, CS, fill=color, op=0.2, stroke=color)
                s.text(ox + c * CS + CS / 2, oy + r * CS + CS / 2 + 6, labels[3 * r + c], anchor="middle", size=16, weight="bold", italic=True)
        for k in range(3):
            s.text(ox - 8, oy + k * CS + CS / 2 + 4, f"{k}", anchor="end", size=10.5, fill="#555555")
            s.text(ox + k * CS + CS / 2, oy + 3 * CS + 14, f"{k}", anchor="middle", size=10.5, fill="#555555")
        s.text(ox + 1.5 * CS, oy + 3 * CS + 34, caption1, anchor="middle", size=12.5, mono=True)
        s.text(ox + 1.5 * CS, oy + 3 * CS + 52, caption2, anchor="middle", size=12.5)
    grid(70, 80, L, BLUE, "forward: w", "w[ky, kx, c, o]", "input channel c → output o")
    grid(570, 80, L[::-1], VERM, "backward-input: w′", "w′[ky, kx, o, c]", "gradient channel o → input c")
    s.line(215, 140, 538, 140, sw=1.8, arrow=True)
    s.text(385, 120, "turn by 180°", anchor="middle", size=13.5, weight="bold")
    s.text(385, 164, "w′[ky, kx, o, c] = w[2−ky, 2−kx, c, o]", anchor="middle", size=12, mono=True)
    s.text(385, 182, "the code reads w with the turned", anchor="middle", size=12)
    s.text(385, 198, "index instead of building w′", anchor="middle", size=12)
    # one-dimensional picture
    Y = 320
    s.line(30, 290, 730, 290, stroke="#BBBBBB", sw=1)
    s.text(380, 312, "Why, in one dimension: a 3-tap kernel (a, b, c) with zero padding", anchor="middle", size=13.5, weight="bold")
    CW = 44
    def row(ox, y, name, color, hi):
        for i in range(6):
            on = i in hi
            s.rect(ox + i * CW, y, CW - 6, 28, fill=color if on else LIGHT, op=0.25 if on else 1.0, stroke=color if on else GREY, sw=1.5 if on else 1)
            s.text(ox + i * CW + (CW - 6) / 2, y + 19, f"{name}{i}", anchor="middle", size=12.5, italic=True)
    def fan(ox, y1, y2, src, dst, labels, color, up=False):
        for (i, lab) in zip(src, labels):
            x1 = ox + i * CW + (CW - 6) / 2
            x2 = ox + dst * CW + (CW - 6) / 2
            s.line(x1, y1, x2, y2, stroke=color, sw=1.6)
            s.text((x1 * 0.55 + x2 * 0.45) + (-10 if i < dst else (10 if i > dst else 8)), (y1 + y2) / 2 + 4, lab,
                   anchor="middle", size=14, italic=True, weight="bold", fill=color)
    # forward panel
    FX = 50
    s.text(FX + 3 * CW - 3, Y + 26, "forward: y2 = a·x1 + b·x2 + c·x3", anchor="middle", size=12.5)
    row(FX, Y + 40, "x", BLUE, {1, 2, 3})
    row(FX, Y + 130, "y", BLUE, {2})
    fan(FX, Y + 68, Y + 130, [1, 2, 3], 2, "abc", BLUE)
    # backward panel
    BX = 440
    s.text(BX + 3 * CW - 3, Y + 26, "backward: gx3 = c·G2 + b·G3 + a·G4", anchor="middle", size=12.5)
    row(BX, Y + 40, "G", VERM, {2, 3, 4})
    row(BX, Y + 130, "gx", VERM, {3})
    fan(BX, Y + 68, Y + 130, [2, 3, 4], 3, "cba", VERM)
    s.text(380, Y + 186, "Input x3 was read by outputs y2, y3, y4 through c, b, a. Its gradient collects G2, G3, G4 through the same",
           anchor="middle", size=12.5)
    s.text(380, Y + 204, "weights, met in reverse order: a convolution of G with the kernel reversed. In 2-D, reversed both ways: turned 180°.",
           anchor="middle", size=12.5)
    s.save("backward-input-flip.svg")


def fc1_l1_sets():
    s = Svg(760, 580, "fc1's weight rows and the L1 cache: every row's line k maps to the same set")
    s.title_text("fc1's weights in the L1 cache: twelve rows, one set, twelve ways")
    ROWC = [BLUE, ORANGE, GREEN, VERM, PURPLE, SKY, "#7F6B00", "#5E3C99", "#1B7837", "#B2182B", "#2166AC", "#8C510A"]
    # left: the weight matrix, rows as strips of cache lines
    X0, Y0, LW, RH = 40, 96, 20, 17
    s.text(X0, 62, "W: 128 rows × 32,768 floats. A row is 128 KB,", size=12.5)
    s.text(X0, 78, "a multiple of 4 KB.", size=12.5)
    NL, K = 10, 4
    for o in range(12):
        y = Y0 + o * (RH + 5)
        s.text(X0 + 44, y + RH - 4, f"row {o}", anchor="end", size=11.5)
        for j in range(NL):
            x = X0 + 52 + j * LW
            on = j == K
            s.rect(x, y, LW - 2, RH, fill=ROWC[o] if on else LIGHT, op=0.85 if on else 1.0,
                   stroke=ROWC[o] if on else "#CCCCCC", sw=1)
        s.text(X0 + 52 + NL * LW + 3, y + RH - 4, "…", size=12)
    yb = Y0 + 12 * (RH + 5)
    kx = X0 + 52 + K * LW + LW / 2 - 1
    s.text(kx, yb + 12, "line k of each row: 16 weights, 64 bytes", anchor="middle", size=11.5)
    # brace and arrow to set s
    bx = X0 + 52 + NL * LW + 22
    s.path(f"M{bx},{Y0} Q{bx+8},{Y0} {bx+8},{Y0+10} L{bx+8},{yb/2+Y0/2-18} Q{bx+8},{yb/2+Y0/2-8} {bx+16},{yb/2+Y0/2-8} "
           f"Q{bx+8},{yb/2+Y0/2-8} {bx+8},{yb/2+Y0/2+2} L{bx+8},{yb-15} Q{bx+8},{yb-5} {bx},{yb-5}", stroke=INK, sw=1.3)
    RX, RY, WW, SH = 440, 96, 23, 17
    ys = RY + 3 * (SH + 8)
    s.path(f"M{bx+18},{yb/2+Y0/2-8} C{bx+60},{yb/2+Y0/2-8} {RX-110},{ys+SH/2} {RX-62},{ys+SH/2}", stroke=INK, sw=1.5, arrow=True)
    s.text(bx + 44, yb / 2 + Y0 / 2 + 22, "all map to", size=11.5)
    s.text(bx + 44, yb / 2 + Y0 / 2 + 37, "the same set", size=11.5)
    # right: the L1 as 64 sets x 12 ways (a window of sets)
    s.text(RX + 6 * WW, 62, "L1 data cache (Zen 5): 48 KB =", anchor="middle", size=12.5)
    s.text(RX + 6 * WW, 78, "64 sets × 12 ways of 64-byte lines", anchor="middle", size=12.5)
    sets = [None, "s−2", "s−1", "s", "s+1", "s+2", None]
    for r, name in enumerate(sets):
        y = RY + r * (SH + 8)
        if name is None:
            s.text(RX + 6 * WW, y + SH - 3, "⋮", anchor="middle", size=15)
            continue
        s.text(RX - 8, y + SH - 4, "set " + name, anchor="end", size=11.5, weight="bold" if name == "s" else "normal")
        for w in range(12):
            x = RX + w * WW
            if name == "s":
                s.rect(x, y, WW - 2, SH, fill=ROWC[w], op=0.85, stroke=ROWC[w], sw=1)
            else:
                s.rect(x, y, WW - 2, SH, fill=LIGHT, stroke="#CCCCCC", sw=1)
    gy = RY + 7 * (SH + 8)
    s.text(RX + 6 * WW, gy + 8, "the tile's 12 lines fill set s exactly", anchor="middle", size=12, weight="bold")
    # a thirteenth line, coming in from below on the right
    y13 = gy + 40
    s.rect(RX + 6 * WW, y13, 44, SH, fill=GREY, op=0.5, stroke=INK, sw=1)
    s.text(RX + 6 * WW - 8, y13 + SH - 4, "a 13th line (a stack slot of xv)", anchor="end", size=11.5)
    ex = RX + 12 * WW + 14
    s.path(f"M{RX+6*WW+46},{y13+SH/2} L{ex},{y13+SH/2} L{ex},{ys+SH/2} L{RX+12*WW+2},{ys+SH/2}", stroke=VERM, sw=1.6, arrow=True)
    s.text(ex - 4, y13 - 8, "evicts one of them", anchor="end", size=11.5, fill=VERM, weight="bold")
    # the arithmetic and the consequences, full width
    ty = yb + 48
    s.line(30, ty - 18, 730, ty - 18, stroke="#BBBBBB", sw=1)
    s.text(40, ty, "address of line k of row o  =  a₀ + o · 131,072 + 64 · k", size=12.5, mono=True)
    s.text(40, ty + 20, "its L1 set                  =  (address / 64) mod 64  =  (a₀ / 64 + k) mod 64", size=12.5, mono=True)
    s.text(40, ty + 40, "since 131,072 / 64 = 2,048 is a multiple of 64: the row o drops out of the set.", size=12.5)
    ty += 72
    s.text(40, ty, "Zen 5 (48 KB, 12 ways): the 12 rows of the AVX-512 tile fit; in about one chunk in four a stack slot of xv", size=12.5)
    s.text(40, ty + 18, "wants the same set, and a weight line is fetched a second time, from L2.", size=12.5)
    s.text(40, ty + 42, "Zen 1 to 4 and Intel Skylake (32 KB, 8 ways): 12 rows cannot fit in one set, and every chunk evicts lines it still needs.",
           size=12.5, fill=VERM)
    s.text(40, ty + 66, "The MLP's rows are 784 floats, 49 lines; 49 and 64 have no common factor, so 64 consecutive rows use 64 different sets.",
           size=12.5)
    s.save("fc1-l1-sets.svg")


def training_step_buffers():
    s = Svg(760, 790, "One training step of the CNN: when each activation and gradient buffer is in use")
    s.title_text("One training step (batch 16): when each buffer is written and last read")
    steps = ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "flatten", "fc1+ReLU", "fc2", "loss",
             "loss", "fc2", "ReLU+fc1", "flatten", "pool3", "conv3", "pool2", "conv2", "pool1", "conv1"]
    LX, CX, CW = 160, 170, 28.5     # label column, first step column, column width
    TOP = 132
    def cx(i):
        return CX + i * CW
    # header: forward and backward bands with rotated step names
    s.rect(cx(0), 44, 10 * CW, 20, fill=BLUE, op=0.18, stroke=BLUE, sw=1)
    s.text(cx(5), 59, "forward →", anchor="middle", size=12.5, weight="bold")
    s.rect(cx(10), 44, 10 * CW, 20, fill=VERM, op=0.18, stroke=VERM, sw=1)
    s.text(cx(15), 59, "← backward", anchor="middle", size=12.5, weight="bold")
    for i, name in enumerate(steps):
        s.text(cx(i) + CW / 2 + 4, TOP - 8, name, size=11, rotate=-60)
        s.line(cx(i), TOP, cx(i), TOP + 19 * 27 + 4, stroke="#E2E2E2", sw=1)
    s.line(cx(20), TOP, cx(20), TOP + 19 * 27 + 4, stroke="#E2E2E2", sw=1)
    s.line(cx(10), TOP - 2, cx(10), TOP + 19 * 27 + 4, stroke=GREY, sw=1.2, dash="4 3")
    # buffers: name, MB at batch 16, first step, last step, kind
    acts = [("x", 3.1, 0, 19), ("r1", 33.6, 0, 18), ("p1", 8.4, 1, 18), ("r2", 16.8, 2, 16),
            ("p2", 4.2, 3, 16), ("r3", 8.4, 4, 14), ("p3", 2.1, 5, 14), ("flat", 2.1, 6, 12),
            ("h1", 0.008, 7, 12), ("logits", 0.0001, 8, 10)]
    grads = [("g_logits", 0.0001, 10, 11), ("g_h1", 0.008, 11, 12), ("g_flat", 2.1, 12, 13), ("g_p3", 2.1, 13, 14),
             ("g_r3", 8.4, 14, 15), ("g_p2", 4.2, 15, 16), ("g_r2", 16.8, 16, 17), ("g_p1", 8.4, 17, 18),
             ("g_r1", 33.6, 18, 19)]
    def mb(v):
        if v >= 1: return f"{v:.1f} MB"
        if v >= 0.001: return f"{v*1000:.0f} KB"
        return "64 B"
    y = TOP + 4
    for group, color in ((acts, BLUE), (grads, VERM)):
        for name, size, a, b in group:
            h = max(3.0, 22.0 * size / 33.6)
            s.text(LX - 62, y + 14, name, anchor="end", size=12, mono=True)
            s.text(LX, y + 14, mb(size), anchor="end", size=11.5, fill="#555555")
            s.rect(cx(a) + 3, y + 10 - h / 2, cx(b + 1) - cx(a) - 6, h, fill=color, op=0.55, stroke=color, sw=1, rx=2)
            y += 27
        if color == BLUE:
            s.line(20, y - 2, 740, y - 2, stroke="#BBBBBB", sw=1)
            y += 2
    # notes
    ny = y + 26
    notes = [
        "Each bar runs from the step that writes the buffer to the last step that reads it; its thickness is the buffer's size.",
        "Activations are written going forward and kept until their layer's backward pass; a gradient lives for two steps.",
        "r1 and g_r1, conv1's output and its gradient, are 44 % of the total and belong to the layer with 8 % of the FLOPs.",
        "The crate allocates them all for the whole step: 75.5 MB of activations (x aside) + 75.5 MB of gradients = 151 MB,",
        "beside 17 MB of weights and 17 MB of weight gradients. Reusing and fusing them is chapter 7's plan.",
    ]
    for i, t in enumerate(notes):
        s.text(30, ny + i * 19, t, size=12.5)
    s.save("training-step-buffers.svg")


def roofline():
    s = Svg(760, 560, "A roofline sketch of one Zen 5 core, with the kernels of the training step placed on it")
    s.title_text("A roofline sketch: one Zen 5 core (chapter 7 will measure the memory roofs)")
    PX0, PX1, PY0, PY1 = 95, 720, 60, 410        # plot area
    XMIN, XMAX, YMIN, YMAX = 0.5, 500.0, 5.0, 500.0
    def X(v):
        return PX0 + (PX1 - PX0) * (math.log10(v) - math.log10(XMIN)) / (math.log10(XMAX) - math.log10(XMIN))
    def Y(v):
        return PY1 - (PY1 - PY0) * (math.log10(v) - math.log10(YMIN)) / (math.log10(YMAX) - math.log10(YMIN))
    s.rect(PX0, PY0, PX1 - PX0, PY1 - PY0, fill="none", stroke=INK, sw=1.2)
    for v in (1, 10, 100):
        s.line(X(v), PY0, X(v), PY1, stroke="#E4E4E4", sw=1)
        s.text(X(v), PY1 + 18, f"{v}", anchor="middle", size=12)
    for v in (10, 100):
        s.line(PX0, Y(v), PX1, Y(v), stroke="#E4E4E4", sw=1)
        s.text(PX0 - 8, Y(v) + 4, f"{v}", anchor="end", size=12)
    s.text((PX0 + PX1) / 2, PY1 + 40, "arithmetic intensity: FLOPs per byte moved (log scale)", anchor="middle", size=13)
    s.text(30, (PY0 + PY1) / 2, "GFLOP/s (log scale)", anchor="middle", size=13, rotate=-90)
    # compute roofs
    for peak, name, dash, col in ((255.2, "AVX-512 peak, 255 GFLOP/s (measured)", None, INK),
                                  (130.7, "AVX2 peak, 131", "6 4", GREY), (63.0, "SSE peak, 63", "6 4", GREY)):
        x0 = X(peak / 30.0) if dash is None else PX0
        s.line(x0, Y(peak), PX1, Y(peak), stroke=col, sw=2.2 if dash is None else 1.3, dash=dash)
        if dash is None:
            s.text(X(peak / 30.0) + 6, Y(peak) - 8, name, size=12, fill=col, weight="bold")
        else:
            s.text(PX1 - 4, Y(peak) + 15, name, anchor="end", size=12, fill=col)
    # bandwidth roofs: GFLOP/s = GB/s * intensity
    def bw(gbs, col, sw, dash, label, lx, xend=None):
        xa, xb = XMIN, xend or min(XMAX, 255.2 / gbs)
        s.line(X(xa), Y(max(YMIN, gbs * xa)), X(xb), Y(gbs * xb), stroke=col, sw=sw, dash=dash)
        s.text(X(lx), Y(gbs * lx) - 8, label, size=11.5, fill=col, rotate=-math.degrees(math.atan2(
            (Y(gbs) - Y(gbs * 10)), (X(10) - X(1)))))
    bw(30, VERM, 2.0, "8 4", "memory, ~30 GB/s: an estimate", 0.9)
    bw(12, BLUE, 1.5, "2 3", "12 GB/s: fc1 forward, as measured", 1.6, xend=9.0)
    s.line(X(255.2 / 30), Y(255.2) - 6, X(255.2 / 30), PY1, stroke=VERM, sw=1, dash="2 3")
    s.text(X(255.2 / 30) + 4, PY1 - 8, "ridge ≈ 8.5", size=11.5, fill=VERM)
    # the kernels, intensity from the tensors' sizes, GFLOP/s from the benchmark report
    pts = [("conv1 fwd", 12.3, 187, 8, 18), ("conv2 fwd", 95.7, 208, -30, 22), ("conv3 fwd", 187.6, 219, -30, 22),
           ("fc1 fwd", 7.1, 96.7, 10, 16), ("fc1 bwd", 7.1, 105, 10, -6)]
    for name, ai, g, dx, dy in pts:
        s.add(f'<circle cx="{X(ai):.1f}" cy="{Y(g):.1f}" r="5" fill="{GREEN}" stroke="{INK}" stroke-width="1"/>')
        s.text(X(ai) + dx, Y(g) + dy, name, size=12, weight="bold")
    notes = [
        "Roofs: the FMA peaks the benchmark report measured on this core; memory bandwidth is an estimate, not measured yet.",
        "Points: the report's GFLOP/s; intensity = FLOPs ÷ bytes of the tensors the call reads and writes, each counted",
        "once (a lower bound on the traffic). Left of the ridge a kernel waits for data, right of it for the FMA pipes.",
        "Chapter 7 (planned) will measure the L1, L2, L3 and memory roofs; in the benchmark, fc1's 16.8 MB of weights",
        "may well come from the 32 MiB L3, not from memory.",
    ]
    for i, t in enumerate(notes):
        s.text(30, PY1 + 70 + i * 19, t, size=12.5)
    s.save("roofline.svg")


def littles_law():
    s = Svg(760, 548, "Little's law for FMAs: one accumulator against eight")
    s.title_text("Why eight accumulators: 2 FMA pipes × 4 cycles of latency")
    LX, X0, CW, RH = 110, 130, 37, 20
    N = 16
    def X(c):
        return X0 + c * CW
    def axis(y):
        for c in range(N):
            s.text(X(c) + CW / 2, y, str(c), anchor="middle", size=11, fill="#555555")
        s.text(LX, y, "cycle", anchor="end", size=11.5, fill="#555555")
    def bar(row_y, c, col, label):
        w = min(4, N - c) * CW - 4  # the last bars run past the right edge and are cut there
        s.rect(X(c) + 2, row_y, w, RH - 4, fill=col, op=0.35, stroke=col, sw=1.2, rx=3)
        s.text(X(c) + 8, row_y + RH - 8, label, size=11)
    def starts(y, counts):
        s.text(LX, y + 13, "FMAs started", anchor="end", size=11.5)
        for c, k in enumerate(counts):
            col = GREEN if k == 2 else (ORANGE if k == 1 else "#DDDDDD")
            s.rect(X(c) + 4, y, CW - 8, 18, fill=col, op=0.45 if k else 1.0, stroke=col, sw=1)
            s.text(X(c) + CW / 2, y + 13, str(k), anchor="middle", size=11.5, weight="bold")
    # one accumulator
    s.text(40, 62, "One accumulator: acc = fma(x, w, acc). Each FMA waits for the one before.", size=13, weight="bold")
    axis(84)
    y = 94
    s.text(LX, y + 13, "acc", anchor="end", size=12, mono=True)
    for k, c in enumerate(range(0, N, 4)):
        bar(y, c, BLUE, f"fma {k}")
    starts(y + 28, [1 if c % 4 == 0 else 0 for c in range(N)])
    s.text(40, y + 70, "1 FMA every 4 cycles, where the core could start 2 per cycle: 1/8 of the peak.", size=12.5)
    # eight accumulators
    y0 = 200
    s.text(40, y0, "Eight accumulators: eight independent chains, two started per cycle, one in each pipe.", size=13, weight="bold")
    axis(y0 + 22)
    for i in range(8):
        y = y0 + 32 + i * (RH + 2)
        s.text(LX, y + 13, f"acc{i}", anchor="end", size=12, mono=True)
        for k, c in enumerate(range(i // 2, N, 4)):
            bar(y, c, BLUE if i % 2 == 0 else ORANGE, f"fma {k}")
    ys = y0 + 32 + 8 * (RH + 2) + 6
    starts(ys, [2] * N)
    s.rect(X0, ys + 34, 14, 12, fill=BLUE, op=0.35, stroke=BLUE, sw=1.2)
    s.text(X0 + 20, ys + 45, "pipe 0", size=11.5)
    s.rect(X0 + 90, ys + 34, 14, 12, fill=ORANGE, op=0.35, stroke=ORANGE, sw=1.2)
    s.text(X0 + 110, ys + 45, "pipe 1", size=11.5)
    s.text(40, ys + 74, "In flight = throughput × latency = 2 per cycle × 4 cycles = 8 FMAs, each into its own accumulator:",
           size=12.5)
    s.text(40, ys + 93, "every accumulator is ready again just as its turn comes round. Fewer chains leave the pipes idle;",
           size=12.5)
    s.text(40, ys + 112, "more do no harm, and the tiles of chapters 5 and 6 have 12 and 24.", size=12.5)
    s.save("littles-law.svg")

if __name__ == "__main__":
    register_tile()
    nchw_nhwc()
    backward_input_flip()
    fc1_l1_sets()
    training_step_buffers()
    roofline()
    littles_law()
