#!/usr/bin/env bash
# Kills the cat/dog trainer with SIGKILL at random moments, again and again, and checks that
# what it leaves always resumes: the checkpoint's commit protocol (chapter 9) under real kills.
#
#   scripts/sigkill-loop.sh [KILLS] [DATA]     # default: 20 kills, $SIMD_CNN_DATA/catdog
#
# Each round starts the trainer (a fresh run the first time, then --resume), sleeps a random
# 0.3-3.3 s and kills it; the next round's resume fails loudly if the kill cost the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
data=${2:-${SIMD_CNN_DATA:-data}/catdog}
# The dev profile is optimised too (Cargo.toml), and CI has it built already.
cargo build --quiet --example train_catdog
bin=target/debug/examples/train_catdog
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
save="$run/catdog.safetensors"
args=(--data "$data" --limit 100 --threads 1 --save "$save")
resumed=0
for ((i = 1; i <= kills; i++)); do
    if [ -e "${save%.safetensors}.state.safetensors" ]; then
        "$bin" "${args[@]}" --epochs 1000 --resume "$save" >"$run/log" 2>&1 &
        resumed=$((resumed + 1))
    else
        "$bin" "${args[@]}" --epochs 1000 --overwrite >"$run/log" 2>&1 &
    fi
    pid=$!
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + 3.0 * r / 32768 }')"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if grep -q '^error' "$run/log"; then
        echo "round $i: the trainer failed:"
        cat "$run/log"
        exit 1
    fi
    progress=$(grep -o 'epoch *[0-9]*/1000' "$run/log" | tail -n 1 || true)
    echo "round $i: killed (${progress:-before its first epoch ended}); left: $(ls "$run" | grep -v '^log$' | tr '\n' ' ')"
done
# The checkpoint the last kill left resumes too (asked for one epoch, it has nothing left to do).
last=$("$bin" "${args[@]}" --epochs 1 --resume "$save" 2>&1 | grep -o 'resuming.*' | sed "s|$run/||g")
echo "$kills kills, $resumed resumes, every one from what the kill before left; at the end: $last"
