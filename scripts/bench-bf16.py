#!/usr/bin/env python3
"""Chapter 11's bf16 table, cut from the benchmark report's JSON.

Reads book/src/output/bench-report.json (written by scripts/update-bench-report.sh), or the
reports named on the command line, and writes book/src/output/bench-bf16.md (or the file given
with `--out FILE`, for a second machine's table): the bf16 peak
against the AVX-512 FMA peak, each bf16 op beside its fp32 twin of the same run (seconds per
call, GFLOP/s, share of the bf16 peak, speed-up) and the forward-only records in images per
second. update-bench-report.sh calls it, so the chapter's table comes from the same measurement
as appendix D. On a CPU without AVX-512 BF16 the report has no bf16 rows, and the table says so."""
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "book" / "src" / "output"


def rate(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def ms(seconds):
    return f"{seconds * 1e3:.1f} ms"


def main():
    args = sys.argv[1:]
    out = OUT / "bench-bf16.md"
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            sys.exit("bench-bf16.py: --out needs a file name")
        out = Path(args[i + 1])
        del args[i : i + 2]
    sources = [Path(a) for a in args] or [OUT / "bench-report.json"]
    reports = [json.loads(s.read_text()) for s in sources]
    records = [r for rep in reports for r in rep["records"]]
    machine = reports[0]["machine"]
    fp32_peak = reports[0]["peaks"].get("avx512")
    body = [f"Measured on {machine.get('cpu_model', '?')}, one thread.", ""]
    if machine.get("debug_assertions"):
        body[0] += " **Built with debug assertions: provisional figures.**"
    peak = next((r for r in records if r["op"] == "peak_bf16"), None)
    if peak is None:
        body.append("This CPU has no AVX-512 BF16 (or avx512 was capped): the report has no bf16 rows.")
    else:
        body += ["| peak loop | GFLOP/s (1 core) |", "| --- | ---: |"]
        if fp32_peak:
            body.append(f"| 12 chains of `vfmadd` (fp32 FMA) | {rate(fp32_peak)} |")
        body.append(f"| 12 chains of `vdpbf16ps` (bf16 pairs) | {rate(peak['gflops'])} |")
        body += ["", "| op | fp32 per call | bf16 per call | bf16 GFLOP/s | % of bf16 peak | bf16 vs fp32 |",
                 "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in records:
            if not r["op"].endswith("_bf16") or r["op"].startswith(("inference", "peak")):
                continue
            twin = next((d for d in records if d["op"] == r["op"][: -len("_bf16")] and d["isa"] == r["isa"]), None)
            speedup = f"{twin['seconds'] / r['seconds']:.2f}x" if twin else "–"
            body.append(
                f"| {r['op']} | {ms(twin['seconds']) if twin else '–'} | {ms(r['seconds'])} | {rate(r['gflops'])} | "
                f"{100 * r['gflops'] / peak['gflops']:.0f} % | {speedup} |")
    inference = [r for r in records if r["op"].startswith("inference_catdog") and r["isa"] == "avx512"]
    steps = [r for r in records if r["op"] in ("train_step_catdog", "train_step_catdog_bf16") and r["isa"] == "avx512"]
    if inference or steps:
        body += ["", "| cat/dog, batch of 16, AVX-512 | images/s | per batch |", "| --- | ---: | ---: |"]
        for r in steps + inference:
            body.append(f"| {r['op']} | {rate(r['images_per_second'])} | {ms(r['seconds'])} |")
    # Written beside the target and renamed over it, so that an interrupted run leaves the old
    # table whole rather than half a new one.
    part = out.with_name(out.name + ".part")
    part.write_text("\n".join(body) + "\n")
    part.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
