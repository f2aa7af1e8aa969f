#!/usr/bin/env python3
"""Chapter 11: llvm-mca's prediction for the convolution inner loops of book/src/asm/, set against
the measured share of the peak in a benchmark report.

    scripts/mca-table.py LLVM_MCA REPORT.json [REPORT.json ...] OUT_DIR

For each of the SSE, AVX2 and AVX-512 loops (`<isa>-conv2d-forward.txt`, written by
scripts/asm-listings.sh) and each CPU model (sapphirerapids, znver4, znver5), llvm-mca simulates
200 iterations of the loop, and of a peak loop of the same instruction set (the loop of
`kernels::x86::<isa>::peak`: 12 independent FMAs, or 6 `mulps` and 6 `addps` for SSE). The
predicted share of the peak is the loop's FLOPs per cycle over the peak loop's; the measured one
is `isa_peak_fraction` of `conv2_forward` (`conv2_forward_asm` for the asm loop) in each REPORT.json, for the CPU model of the machine that
report was taken on (AMD family 26 is Zen 5, family 25 Zen 4, Intel is taken as Sapphire
Rapids). The measured figure covers the whole forward pass (packing, borders, stores), the
prediction only the loop. Writes OUT_DIR/ch11-mca-<isa>-<cpu>.txt (llvm-mca's summary and
resource pressure) and prints the markdown table.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

CPUS = ["sapphirerapids", "znver4", "znver5"]
# ISA: (listing, FLOPs per iteration of its loop: pixels x vectors x lanes x 2, peak loop, its FLOPs)
LOOPS = {
    "sse": ("sse-conv2d-forward", 5 * 2 * 4 * 2),
    "avx2": ("avx2-conv2d-forward", 6 * 2 * 8 * 2),
    "avx512": ("avx512-conv2d-forward", 6 * 4 * 16 * 2),
    # chapter 11's asm! tile, the same 6 x 4 loop written by hand; measured as conv2_forward_asm
    "avx512-asm": ("avx512-asm-conv2d-forward", 6 * 4 * 16 * 2),
}


def peak_loop(isa):
    """The peak loop's body in Intel syntax and its FLOPs per iteration."""
    isa = isa.removesuffix("-asm")
    if isa == "sse":
        body = [f"mulps xmm{c}, xmm14" for c in range(6)] + [f"addps xmm{6 + c}, xmm15" for c in range(6)]
        return body, 12 * 4
    reg, lanes = ("ymm", 8) if isa == "avx2" else ("zmm", 16)
    return [f"vfmadd213ps {reg}{c}, {reg}14, {reg}15" for c in range(12)], 12 * lanes * 2


def mca(tool, cpu, lines):
    src = ".intel_syntax noprefix\nloop:\n" + "\n".join(lines) + "\n"
    out = subprocess.run(
        [tool, "-mtriple=x86_64", f"-mcpu={cpu}", "-iterations=200", "-resource-pressure", "-instruction-info=0"],
        input=src,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / 200
    return cycles, out


def loop_lines(path):
    """The instructions of a listing, labels and the header comment dropped, the branch kept."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s.startswith(";") or s.endswith(":"):
            continue
        lines.append(re.sub(r"^(j\w+) \w+$", r"\1 loop", s))
    return lines


def machine_cpu(report):
    model = report["machine"]["cpu_model"]
    if "AMD" in model and "family 26" in model:
        return "znver5"
    if "AMD" in model and "family 25" in model:
        return "znver4"
    if "Intel" in model:
        return "sapphirerapids"
    return None


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: mca-table.py LLVM_MCA REPORT.json [REPORT.json ...] OUT_DIR")
    tool, report_paths, out_dir = sys.argv[1], [Path(p) for p in sys.argv[2:-1]], Path(sys.argv[-1])
    # (cpu model, loop) -> measured share of the peak; the first report of a CPU model wins.
    measured = {}
    sources = []
    for report_path in report_paths:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        mine = machine_cpu(report)
        sources.append(f"{report_path.name} ({report['machine']['cpu_model']}, llvm-mca model {mine})")
        for r in report["records"]:
            if r["op"] in ("conv2_forward", "conv2_forward_asm") and r.get("isa_peak_fraction"):
                key = (mine, r["isa"] + ("-asm" if r["op"].endswith("_asm") else ""))
                measured.setdefault(key, r["isa_peak_fraction"])
    asm_dir = Path(__file__).resolve().parent.parent / "book/src/asm"
    print(f"Measured: `conv2_forward` in {'; '.join(sources)}.\n")
    print("| loop | FLOPs / iteration | llvm-mca -mcpu | predicted cycles / iteration | peak loop, cycles / iteration | predicted % of peak | measured % of peak |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for isa, (listing, flops) in LOOPS.items():
        if not (asm_dir / f"{listing}.txt").exists():
            sys.exit(f"mca-table: no {listing}.txt in {asm_dir}: run scripts/asm-listings.sh first")
        body = loop_lines(asm_dir / f"{listing}.txt")
        peak_body, peak_flops = peak_loop(isa)
        for cpu in CPUS:
            cycles, out = mca(tool, cpu, body)
            peak_cycles, _ = mca(tool, cpu, peak_body + ["dec rax", "jnz loop"])
            (out_dir / f"ch11-mca-{isa}-{cpu}.txt").write_text(
                f"; llvm-mca -mcpu={cpu}, {listing}\n" + out, encoding="utf-8"
            )
            predicted = (flops / cycles) / (peak_flops / peak_cycles)
            got = f"{100 * measured[(cpu, isa)]:.0f} %" if (cpu, isa) in measured else "–"
            print(f"| {listing} | {flops} | {cpu} | {cycles:.1f} | {peak_cycles:.1f} | {100 * predicted:.0f} % | {got} |")


if __name__ == "__main__":
    main()
