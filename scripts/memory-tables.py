#!/usr/bin/env python3
"""Chapter 7's tables, cut from the full benchmark report.

Reads book/src/output/bench-report.json (written by scripts/update-bench-report.sh, which calls
this script) and writes:

  book/src/output/ch7-memory.md    the caches as cpuid describes them, and the read bandwidth of
                                   each level on one thread and on all of them
  book/src/output/ch7-roofline.md  every op of the cat/dog network with the best instruction set:
                                   bytes it must move, FLOPs per byte, the level its buffers fit
                                   in, the roof that applies and the share of it the op reaches

A report written before chapter 7 (no "memory" object) is an error, in one line. An argument names
another report to read instead (`scripts/memory-tables.py my-report.json`); the tables are
written to the same place.
"""
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "book" / "src" / "output"
ORDER = ["scalar", "sse", "avx2", "avx512"]
LABEL = {"scalar": "scalar", "sse": "SSE", "avx2": "AVX2", "avx512": "AVX-512"}
LEVEL = {"l1": "L1", "l2": "L2", "l3": "L3", "dram": "memory"}


def rate(x):
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def binary(b):
    return f"{rate(b / 1024)} KiB" if b < 1 << 20 else f"{rate(b / (1 << 20))} MiB"


def size(b):
    return f"{rate(b / 1024)} KiB" if b < 1 << 20 else f"{rate(b / 1e6)} MB"


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT / "bench-report.json"
    try:
        report = json.loads(source.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"memory-tables: cannot read {source}: {e}")
    memory = report.get("memory")
    if not memory:
        sys.exit("memory-tables: bench-report.json has no \"memory\" object (run bench_report with chapter 7)")
    cpu = report["machine"]["cpu_model"]
    lines = [
        f"Measured on {cpu}, {LABEL[memory['isa']]} loads.",
        "",
        "| cache | size | ways | sets | line | shared by |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in memory["caches"]:
        lines.append(
            f"| L{c['level']} {c['kind']} | {binary(c['bytes'])} | {c['ways']} | {c['sets']} | {c['line_bytes']} B | {c['shared_by']} thread{'s' if c['shared_by'] != 1 else ''} |"
        )
    lines += [
        "",
        f"| level | buffer per thread | read GB/s, 1 thread | read GB/s, all threads ({memory['threads']}) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ["l1", "l2", "l3", "dram"]:
        level = memory.get(name)
        if level:
            lines.append(f"| {LEVEL[name]} | {binary(level['bytes'])} | {rate(level['gbs'])} | {rate(level['gbs_all_threads'])} |")
    (OUT / "ch7-memory.md").write_text("\n".join(lines) + "\n")

    isas = [isa for isa in ORDER if report["peaks"].get(isa)]
    best = isas[-1]
    peak = report["peaks"][best]
    lines = [
        f"| op | bytes at least | FLOPs per byte | buffers fit in | roof GFLOP/s | bound by | {LABEL[best]} GFLOP/s | % of roof |",
        "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for r in report["records"]:
        if r["isa"] != best or r["op"].startswith("mlp_") or r.get("bytes") is None:
            continue
        bound = "the FMA pipes" if r["roof_gflops"] >= peak else f"{LEVEL[r['roof']]} bandwidth"
        lines.append(
            f"| {r['op']} | {size(r['bytes'])} | {rate(r['intensity'])} | {LEVEL[r['roof']]} | {rate(r['roof_gflops'])} | {bound} | {rate(r['gflops'])} | {100 * r['roofline_fraction']:.0f} % |"
        )
    lines += ["", f"Roofs from the {LABEL[best]} peak of {rate(peak)} GFLOP/s and the one-thread bandwidths above."]
    (OUT / "ch7-roofline.md").write_text("\n".join(lines) + "\n")
    print("wrote book/src/output/ch7-memory.md and ch7-roofline.md")


if __name__ == "__main__":
    main()
