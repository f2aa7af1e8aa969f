#!/usr/bin/env bash
# Regenerates book/src/output/: runs every command whose output the book quotes and stores the
# command line and what it printed, so that no transcript in the book is typed by hand.
#
#   scripts/update-book-outputs.sh            # everything (the scalar MNIST run takes a minute or two)
#   scripts/update-book-outputs.sh ch1 ch3    # only the outputs whose names start with ch1 or ch3
#
# What is trimmed: cargo's own progress lines (Compiling, Finished, Running of a binary), test
# targets the transcript is not about, and empty harness sections. Test lines are sorted by name:
# cargo prints them in the order the tests finish, which changes from run to run.
#
# Data: the MNIST files are looked up as the examples do, in $SIMD_CNN_DATA/mnist, else
# data/mnist. Run this on an idle machine: the transcripts include timings.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=book/src/output
mkdir -p "$OUT"
export CARGO_TERM_COLOR=never
export SIMD_CNN_DATA=${SIMD_CNN_DATA:-data}
unset SIMD_CNN_MAX_ISA SIMD_CNN_REQUIRE_ISA

ONLY=("$@")

# The transcripts include timings; say so when other work is competing for the cores.
read -r load _ </proc/loadavg || load=0
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    echo "update-book-outputs: load average $load: the timings in the transcripts will be low" >&2
fi

# Whether output NAME was asked for (all of them when no argument was given).
source scripts/wanted.sh

# Drops cargo's progress lines, keeping what the program printed.
drop_cargo_progress() {
    grep -Ev '^ *(Compiling|Checking|Finished|Blocking|Updating|Locking|Downloading|Downloaded|Adding) |^ *Running `' || true
}

# Keeps the sections of the test targets named in $@ (file stems such as ch3_gradcheck) from
# `cargo test` output, with the binary's hash removed and the test lines sorted.
keep_test_targets() {
    local keep=" $* " line name printing=0
    local -a tests=()
    while IFS= read -r line; do
        case $line in
            *"Running unittests "* | *"Doc-tests "*)
                printing=0
                ;;
            *"Running tests/"*)
                name=${line#*Running tests/}
                name=${name%% *}
                if [[ $keep == *" ${name%.rs} "* ]]; then
                    printing=1
                    printf '     Running tests/%s\n\n' "$name"
                else
                    printing=0
                fi
                ;;
            "test result:"*)
                if ((printing)); then
                    ((${#tests[@]})) && printf '%s\n' "${tests[@]}" | LC_ALL=C sort
                    printf '\n%s\n\n' "$line"
                fi
                tests=()
                ;;
            "test "*)
                ((printing)) && tests+=("$line")
                ;;
            *)
                ((printing)) && [[ -n $line ]] && printf '%s\n' "$line"
                ;;
        esac
    done
    return 0
}

# record NAME FILTER COMMAND...: runs COMMAND, writes "$ COMMAND" and its filtered output to
# $OUT/NAME.txt. A failing command stops the script: the book must not quote a failure by
# accident.
record() {
    local name=$1 filter=$2
    shift 2
    wanted "$name" || return 0
    echo "== $name: $*" >&2
    local raw status=0
    raw=$(mktemp)
    "$@" >"$raw" 2>&1 || status=$?
    if ((status != 0)); then
        cat "$raw" >&2
        rm -f "$raw"
        echo "update-book-outputs: '$*' failed with status $status" >&2
        exit 1
    fi
    {
        printf '$ %s\n' "$*"
        eval "$filter" <"$raw" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
    } >"$OUT/$name.tmp"
    mv "$OUT/$name.tmp" "$OUT/$name.txt"
    rm -f "$raw"
}

# Chapter 1
record ch1-test "drop_cargo_progress | keep_test_targets ch1_tensor" cargo ch1

# Chapter 2
record ch2-test "drop_cargo_progress | keep_test_targets ch2_forward" cargo ch2

# Chapter 3
record ch3-test "drop_cargo_progress | keep_test_targets ch3_gradcheck ch3_training" cargo ch3
record ch3-skips "drop_cargo_progress | keep_test_targets ch3_gradcheck" \
    cargo ch3 --test ch3_gradcheck conv2d_backward -- --nocapture
record train_mnist drop_cargo_progress cargo run --release --example train_mnist -- --isa scalar

# Chapter 4
record ch4-test "drop_cargo_progress | keep_test_targets ch4_simd_kernels" cargo ch4
record ch4-train-mnist drop_cargo_progress cargo run --release --example train_mnist -- --isa sse

# Chapter 5
record ch5-test "drop_cargo_progress | keep_test_targets ch4_simd_kernels" cargo ch5 --test ch4_simd_kernels
record ch5-train-mnist drop_cargo_progress cargo run --release --example train_mnist -- --isa avx2

# Chapter 6
record ch6-test "drop_cargo_progress | keep_test_targets ch4_simd_kernels" \
    env SIMD_CNN_REQUIRE_ISA=avx512 cargo ch6 --test ch4_simd_kernels
record ch6-train-mnist drop_cargo_progress cargo run --release --example train_mnist

# Chapter 8
record ch8-test "drop_cargo_progress | keep_test_targets ch8_threads" cargo ch8 --test ch8_threads
