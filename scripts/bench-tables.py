#!/usr/bin/env python3
"""The focused tables of chapters 4, 5 and 6, cut from the full benchmark report.

Reads book/src/output/bench-report.json (written by scripts/update-bench-report.sh) and writes
book/src/output/bench-sse.md, bench-avx2.md and bench-avx512.md: for one instruction set, every op
of the cat/dog network's training step with its GFLOP/s, its fraction of that instruction set's
measured peak, and its speed against the instruction set before it and against scalar. The full
table, every op on every instruction set, is appendix D. update-bench-report.sh calls this
script, so the focused tables always come from the same measurement as the full one.
"""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "book" / "src" / "output"
ORDER = ["scalar", "sse", "avx2", "avx512"]
LABEL = {"scalar": "scalar", "sse": "SSE", "avx2": "AVX2", "avx512": "AVX-512"}


def rate(gflops):
    return f"{gflops:.3g}" if gflops < 100 else f"{gflops:.0f}"


def main():
    report = json.loads((OUT / "bench-report.json").read_text())
    by = {(r["op"], r["isa"]): r for r in report["records"]}
    # The Winograd rows (chapter 10) have no scalar counterpart; scripts/bench-winograd.py cuts their table.
    # Nor have chapter 11's asm rows, which the report sets beside their direct ops itself.
    ops = [
        op
        for op in dict.fromkeys(r["op"] for r in report["records"])
        if not op.startswith("mlp_") and not op.endswith(("_winograd", "_asm"))
    ]
    for isa in ORDER[1:]:
        before = ORDER[ORDER.index(isa) - 1]
        peak = report["peaks"].get(isa)
        compare = [before, "scalar"] if before != "scalar" else ["scalar"]
        lines = [
            f"| op | {LABEL[isa]} GFLOP/s | % of the {LABEL[isa]} peak ({rate(peak)}) | "
            + " | ".join(f"vs {LABEL[c]}" for c in compare) + " |",
            "| --- | ---: | ---: |" + " ---: |" * len(compare),
        ]
        for op in ops:
            r, b = by.get((op, isa)), by.get((op, before))
            if r is None:
                continue
            vs_before = f"{r['gflops'] / b['gflops']:.2f}x" if b else "—"
            ratios = ([vs_before] if before != "scalar" else []) + [f"{r['speedup_vs_scalar']:.2f}x"]
            flag = " ⚠" if r.get("noise") else ""
            lines.append(
                f"| {op} | {rate(r['gflops'])}{flag} | {100 * r['isa_peak_fraction']:.1f} % | " + " | ".join(ratios) + " |"
            )
        machine = report["machine"]["cpu_model"]
        lines += ["", f"From the report of appendix D ({machine}, one core; ⚠: a disturbed measurement, see there)."]
        (OUT / f"bench-{isa}.md").write_text("\n".join(lines) + "\n")
        print(f"wrote {OUT / f'bench-{isa}.md'}")


if __name__ == "__main__":
    main()
