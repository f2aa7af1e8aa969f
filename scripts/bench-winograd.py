#!/usr/bin/env python3
"""Chapter 10's table, cut from the full benchmark report.

Reads book/src/output/bench-report.md (written by scripts/update-bench-report.sh) and writes
book/src/output/bench-winograd.md: the Winograd rows (effective GFLOP/s, share of the instruction
set's peak, the products' own GFLOP/s, speed-up over the direct op of the same run) and the direct
rows they are compared with. update-bench-report.sh calls it, so the chapter's table always comes
from the same measurement as appendix D."""
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "book" / "src" / "output"


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT / "bench-report.md"
    lines = source.read_text().splitlines()
    machine = next((l for l in lines if l.startswith("Measured on")), "")
    start = next((i for i, l in enumerate(lines) if l.startswith("| op | ISA | effective GFLOP/s")), None)
    if start is None:
        sys.exit(f"{source}: no Winograd table (was bench_report built with chapter 10?)")
    table = [lines[start], lines[start + 1]]
    for l in lines[start + 2:]:
        if not l.startswith("|"):
            break
        table.append(l)
    peaks = [l for l in lines if l.startswith("| ") and not l.startswith("| ---") and "peak GFLOP/s" not in l and l.count("|") == 3]
    body = [machine, "", "| ISA | peak GFLOP/s (1 core) |", "| --- | ---: |", *peaks, "", *table, "",
            "Effective GFLOP/s count the direct convolution's FLOPs; the products' GFLOP/s count the "
            "multiply-adds F(4x4, 3x3) does (36 per tile and channel pair instead of 144). "
            f"From `output/{source.name}`" + (" (appendix D's report)." if source.name == "bench-report.md" else ".")]
    (OUT / "bench-winograd.md").write_text("\n".join(body) + "\n")
    print(f"wrote {OUT / 'bench-winograd.md'}")


if __name__ == "__main__":
    main()
