#!/usr/bin/env python3
"""Annotates a convolution inner loop written by scripts/asm-listings.sh, line by line, with what
each instruction does in the Rust source (`Intrinsics::channels` in src/kernels/generic/conv2d.rs):

    scripts/annotate-asm.py book/src/asm/avx512-conv2d-forward.txt

The loop is the body of `for ci in 0..c_in` for one tile of P pixels by C vectors: C loads of
weight vectors (`wv[j]`), then for each pixel p one broadcast of its input value (`xv`) and C
multiply-adds into `acc[p][j]`, then the bookkeeping of the loop. The script follows registers:
a load from memory into a vector register is weight vector j (in the order of the loads), a
broadcast (vbroadcastss, or movss + shufps on SSE2) starts pixel p (in order), and a multiply-add
names its accumulator by the pixel being broadcast and the weight register it reads. General
purpose instructions are named by their shape (address arithmetic, the counter, the branch).
An instruction it does not recognise is printed with "?": the listing has changed shape, and the
text that reads it must be checked. Prints the annotated listing on stdout.
"""
import re
import sys


def annotate(lines):
    weights = {}  # vector register -> j
    broadcast = {}  # vector register -> pixel p it holds
    products = {}  # SSE: register holding xv * wv[j] -> (p, j)
    pixel = -1
    out = []
    for line in lines:
        text = line.rstrip("\n")
        s = text.strip()
        if not s or s.startswith(";") or s.endswith(":"):
            out.append((text, ""))
            continue
        op, _, rest = s.partition(" ")
        args = [a.strip() for a in rest.split(",")] if rest else []
        note = "?"
        vec = lambda a: re.fullmatch(r"[xyz]mm\d+", a) is not None
        if op in ("vmovups", "movups", "vmovaps") and len(args) == 2 and vec(args[0]) and "PTR" in args[1]:
            j = len(weights)
            weights[args[0]] = j
            note = f"wv[{j}] = s.load(taps + ci * c_out_p + {j} * LANES): weight vector {j} of channel ci"
        elif op == "vbroadcastss" or (op == "movss" and "PTR" in rest):
            pixel += 1
            broadcast[args[0]] = pixel
            if op == "vbroadcastss":
                note = f"xv = s.splat(px[{pixel} * c_in + ci]): pixel {pixel}'s input value, in every lane"
            else:
                note = f"pixel {pixel}'s input value px[{pixel} * c_in + ci] into lane 0"
        elif op == "shufps" and args[0] == args[1] and args[2] in ("0x0", "0"):
            note = f"... copied to all 4 lanes: xv = s.splat(px[{broadcast.get(args[0], '?')} * c_in + ci])"
        elif op.startswith("vfmadd231ps") and len(args) == 3:
            acc, a, b = args
            p = broadcast.get(a, broadcast.get(b, "?"))
            w = weights.get(b, weights.get(a, "?"))
            note = f"acc[{p}][{w}] = s.mul_add(xv, wv[{w}], acc[{p}][{w}])"
        elif op == "movaps" and len(args) == 2 and args[1] in broadcast:
            broadcast[args[0]] = broadcast[args[1]]
            note = "copy xv: SSE's mulps overwrites its first operand, and xv is needed again"
        elif op == "mulps" and len(args) == 2:
            p = broadcast.get(args[0], broadcast.get(args[1], "?"))
            w = weights.get(args[1], weights.get(args[0], "?"))
            products[args[0]] = (p, w)
            if args[0] in weights:
                del weights[args[0]]
            note = f"xv * wv[{w}] (pixel {p}), rounded: the first half of SSE's mul_add"
        elif op == "addps" and len(args) == 2 and args[1] in products:
            p, w = products[args[1]]
            note = f"acc[{p}][{w}] += xv * wv[{w}]: the second half, rounded again"
        elif op == "lea" and re.search(r"\[(\w+)\+\1\*1\]", rest):
            note = "twice the pixel stride in bytes, to step two pixels along the row"
        elif op == "lea" and "+" in rest and "*" in rest:
            note = "address arithmetic: a pixel's input further along the row (c_in floats per pixel)"
        elif op == "add" and len(args) == 2 and re.fullmatch(r"r\w+", args[1] or ""):
            note = "pointer += stride: to the next pixels, or the next channel's row of weights (c_out_p floats)"
        elif op == "add" and len(args) == 2 and re.fullmatch(r"(0x)?[0-9a-f]+", args[1]):
            note = "pointer += one float: the next input channel"
        elif op in ("inc", "dec"):
            note = "ci += 1" if op == "inc" else "channels left -= 1"
        elif op == "cmp":
            note = "ci == c_in?"
        elif op.startswith("j"):
            note = "loop back for the next input channel"
        out.append((text, note))
    width = max(len(t) for t, _ in out)
    return "\n".join(f"{t:<{width}}  ; {n}" if n else t for t, n in out) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: annotate-asm.py LISTING (a file written by scripts/asm-listings.sh)")
    with open(sys.argv[1], encoding="utf-8") as f:
        text = annotate(f.readlines())
    if "  ; ?" in text:
        print(text, end="")
        sys.exit("annotate-asm: an instruction was not recognised (marked '?'): check the listing's shape")
    print(text, end="")


if __name__ == "__main__":
    main()
