#!/usr/bin/env bash
# Regenerates the benchmark report the book quotes in chapters 4 to 8:
#   book/src/output/bench-report.md    the markdown tables (peaks, every op, the training steps)
#   book/src/output/bench-report.json  the machine, the peaks and every measurement
#   book/src/charts/bench/*.svg        the staircase scalar -> SSE -> AVX2 -> AVX-512 of each op,
#                                      and chapter 7's memory-mountain.svg and roofline.svg
# It takes about five minutes and wants an idle machine: run nothing else meanwhile. Rows the
# machine disturbed are marked in the table; if there are many, run it again.
#
#   scripts/update-bench-report.sh               # the book's report (chapters 4 to 11)
#   scripts/update-bench-report.sh --machine xeon
#       a second machine's report, output/bench-report-xeon.{json,md}, from which only the tables
#       of chapters 10 and 11 are cut (their Winograd, bf16, asm and llvm-mca tables name the
#       machine they come from); chapters 4 to 7 and the charts keep the book's report.
#   scripts/update-bench-report.sh --machine zen4
#       a third machine's report, output/bench-report-zen4.{json,md}, and its bf16 table,
#       output/bench-bf16-zen4.md, which chapter 11 sets beside the Xeon's; chapter 6's
#       'your CPU' and chapter 7 quote its rows.
set -euo pipefail
cd "$(dirname "$0")/.."
unset SIMD_CNN_MAX_ISA SIMD_CNN_REQUIRE_ISA
read -r load _ </proc/loadavg || load=0
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    echo "update-bench-report: load average $load: other work is running, the figures will be low" >&2
fi
cargo build --quiet --release --example bench_report
if [[ ${1:-} == --machine ]]; then
    name=${2:?usage: update-bench-report.sh --machine NAME}
    out=book/src/output/bench-report-$name
    charts=$(mktemp -d)
    ./target/release/examples/bench_report --json-out "$out.json" --markdown "$out.md" --svg-dir "$charts"
    rm -rf "$charts"
    if [[ $name == xeon ]]; then
        # The machine of chapters 10 and 11's main tables.
        python3 scripts/bench-winograd.py "$out.md"
        python3 scripts/bench-bf16.py "$out.json"
    else
        # Another machine's bf16 table, which chapter 11 sets beside the Xeon's.
        python3 scripts/bench-bf16.py "$out.json" --out "book/src/output/bench-bf16-$name.md"
    fi
    exit 0
fi
rm -rf book/src/charts/bench
./target/release/examples/bench_report \
    --json-out book/src/output/bench-report.json \
    --markdown book/src/output/bench-report.md \
    --svg-dir book/src/charts/bench
# The focused tables of chapters 4-6, from the same measurement.
python3 scripts/bench-tables.py
python3 scripts/bench-winograd.py
python3 scripts/bench-bf16.py
# Chapter 7's memory and roofline tables, from the same measurement.
python3 scripts/memory-tables.py
