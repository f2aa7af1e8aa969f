#!/usr/bin/env bash
# The cat/dog CNN's training step measured three ways in one sitting, the programs in turn:
# this crate (`cargo bench --bench train_step -- threads`), PyTorch (scripts/torch_step.py,
# channels-last with tcmalloc, its fastest configuration here) and NumPy (scripts/numpy_step.py,
# im2col + BLAS), each on 1 thread and on 2, for ROUNDS rounds (default 2).
#
#   scripts/compare-frameworks.sh            # PYTHON=path/to/python with torch and numpy
#
# Writes book/src/output/frameworks.md, the table the introduction and chapter 8 include, and
# frameworks.txt, every line the three programs printed. Run it on an idle machine: compare the
# ratios in one table, never figures from two runs of it. Set-up of PyTorch on a machine without a
# GPU: ../shared/anchors/README.md (or appendix C); tcmalloc: `apt-get install libtcmalloc-minimal4`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rounds=${ROUNDS:-2}
out=book/src/output
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -e "$tcmalloc" ] || { echo "no $tcmalloc: apt-get install libtcmalloc-minimal4" >&2; exit 1; }
"$PY" -c "import torch, numpy" || { echo "$PY cannot import torch and numpy (see the header)" >&2; exit 1; }

read -r load _ </proc/loadavg
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' && echo "compare-frameworks: load average $load: the machine is not idle" >&2

export CARGO_TERM_COLOR=never
cargo bench --quiet --bench train_step --no-run 2>/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rows=()
rate() { grep -o '[0-9.]* images/s' | head -n 1 | cut -d' ' -f1; }
# Runs a command, logs it as a transcript ($ command, then what it printed), prints its output.
logged() {
    echo "\$ $*" | sed "s|$PY|python3|" >>"$log"
    "$@" 2>&1 | tee -a "$log"
}
for ((round = 1; round <= rounds; round++)); do
    echo "# round $round" >>"$log"
    # criterion: the benchmark's name, its time and its throughput (images/s); the middle of the
    # three throughput figures is the estimate
    echo "\$ cargo bench --bench train_step -- threads" >>"$log"
    ours=$(cargo bench --quiet --bench train_step -- threads 2>&1 | awk '/^train_step_threads\// { n = 3 } n-- > 0' | tee -a "$log" |
        awk '/^train_step_threads\// { id = $1 } /thrpt:/ && id { v = $4; gsub(/\[/, "", v); print v; id = "" }')
    ours1=$(sed -n 1p <<<"$ours")
    ours2=$(sed -n 2p <<<"$ours")
    torch1=$(LD_PRELOAD=$tcmalloc logged "$PY" scripts/torch_step.py --threads 1 --channels-last | rate)
    torch2=$(LD_PRELOAD=$tcmalloc logged "$PY" scripts/torch_step.py --threads 2 --channels-last | rate)
    numpy1=$(logged env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" scripts/numpy_step.py --threads 1 | rate)
    numpy2=$(logged env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" scripts/numpy_step.py --threads 2 | rate)
    rows+=("simd-cnn, round $round|$ours1|$ours2" "PyTorch, round $round|$torch1|$torch2" "NumPy, round $round|$numpy1|$numpy2")
done

family=$(lscpu | awk -F: '/^CPU family/ { gsub(/ /, "", $2); print $2 }')
case "$family" in 25) gen="Zen 4" ;; 26) gen="Zen 5" ;; *) gen="family $family" ;; esac
torch_version=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
numpy_version=$("$PY" -c "import numpy; print(numpy.__version__)")
{
    echo "| images per second, batch 16 | 1 thread | 2 threads | 2 threads / 1 |"
    echo "| --- | ---: | ---: | ---: |"
    for row in "${rows[@]}"; do
        IFS='|' read -r name one two <<<"$row"
        printf '| %s | %.1f | %.1f | %.2f |\n' "$name" "$one" "$two" "$(awk -v a="$one" -v b="$two" 'BEGIN { print b / a }')"
    done
    echo
    echo "Measured by \`scripts/compare-frameworks.sh\` on $(date -u +%Y-%m-%d): $(lscpu | awk -F: '/^Model name/ { sub(/^ */, "", $2); print $2 }'), $gen (CPU family $family), $(nproc) logical CPUs; PyTorch $torch_version (channels-last, tcmalloc), NumPy $numpy_version; the programs in turn, $rounds rounds."
} >"$out/frameworks.md"
cp "$log" "$out/frameworks.txt"
cat "$out/frameworks.md"
