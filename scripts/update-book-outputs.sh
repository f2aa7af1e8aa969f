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
# data/mnist; the cat and dog photos in $SIMD_CNN_DATA/catdog, else data/catdog (a link to the
# folder that holds PetImages will do). Run this on an idle machine: the transcripts include
# timings.
#
# Chapter 9's full training runs (book/src/output/ch9-train-*.txt and the curves in
# book/src/charts/) take an hour or more each and are not rerun here; chapter 9 gives their
# commands. The predictions and pictures of chapter 9 need the weights of one of them in
# runs/improved/catdog.safetensors, and chapter 11's int8 predictions those of chapter 10's full
# Winograd run in runs/winograd/catdog.safetensors; each is left as it is when its file is missing.
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
# accident. `EXPECT=N record ...` is for the transcripts of failures the book shows on purpose:
# the command must then end with status N, and any other status (0 included) stops the script.
record() {
    local name=$1 filter=$2 expect=${EXPECT:-0}
    shift 2
    wanted "$name" || return 0
    echo "== $name: $*" >&2
    local raw status=0
    raw=$(mktemp)
    "$@" >"$raw" 2>&1 || status=$?
    if ((status != expect)); then
        cat "$raw" >&2
        rm -f "$raw"
        echo "update-book-outputs: '$*' ended with status $status, expected $expect" >&2
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

# Chapter 7 (its tables and charts come from the benchmark report: scripts/update-bench-report.sh)
record ch7-test "drop_cargo_progress | keep_test_targets ch7_memory ch7_fusion ch7_im2col" \
    env SIMD_CNN_REQUIRE_ISA=avx512 cargo ch7 --test ch7_memory --test ch7_fusion --test ch7_im2col
record ch7-fc1-tile "grep -E \"^fc1's AVX-512 forward tile\" || true" \
    cargo run --release --example bench_report -- --only fc1_forward --json-out target/fc1-tile.json

# Chapter 8
record ch8-test "drop_cargo_progress | keep_test_targets ch8_threads" cargo ch8 --test ch8_threads

# Chapter 9
record ch9-test "drop_cargo_progress | keep_test_targets ch9_data ch9_checkpoint ch9_trainer" \
    env SIMD_CNN_REQUIRE_DATA=1 cargo ch9 --test ch9_data --test ch9_checkpoint --test ch9_trainer
# A cache built from scratch in a folder of its own (the data folder is read-only here, so the
# example falls back to --cache-dir), then deleted: it is a gigabyte.
if wanted ch9-data; then
    rm -rf runs/cache
    record ch9-data drop_cargo_progress cargo run --release --example catdog_data -- --cache-dir runs/cache
    rm -rf runs/cache
fi
# A short run, the same run stopped by SIGINT (what Ctrl-C sends) and resumed on another number
# of threads, and a byte-by-byte comparison of the two weights files. `cmp` ends with status 1
# because the run ids differ. The four go together: each needs the files of the one before.
if wanted ch9-straight || wanted ch9-stop || wanted ch9-resume || wanted ch9-compare || wanted ch9-refuse; then
    rm -rf runs/resume
    (
        ONLY=()
        # One thread, so that the SIGINT after 15 seconds falls in the second epoch (about 10
        # seconds each on the book's machine).
        quick=(--limit 2000 --epochs 2)
        record ch9-straight drop_cargo_progress \
            cargo run --release --example train_catdog -- "${quick[@]}" --threads 1 --save runs/resume/straight.safetensors
        EXPECT=130 record ch9-stop drop_cargo_progress timeout --preserve-status -s INT 15 \
            cargo run --release --example train_catdog -- "${quick[@]}" --threads 1 --save runs/resume/stopped.safetensors
        record ch9-resume drop_cargo_progress \
            cargo run --release --example train_catdog -- "${quick[@]}" --threads 2 \
            --save runs/resume/stopped.safetensors --resume runs/resume/stopped.safetensors
        EXPECT=1 record ch9-compare cat cmp -l runs/resume/straight.safetensors runs/resume/stopped.safetensors
        # The same command again, forgetting --resume: refused before anything is opened.
        EXPECT=1 record ch9-refuse drop_cargo_progress \
            cargo run --release --example train_catdog -- "${quick[@]}" --threads 1 --save runs/resume/straight.safetensors
    )
fi
record ch9-sigkill drop_cargo_progress scripts/sigkill-loop.sh 20
EXPECT=1 record ch9-diverge drop_cargo_progress \
    cargo run --release --example train_catdog -- --limit 200 --epochs 1 --lr 50 --save runs/diverge/catdog.safetensors
# Chapter 10: the Winograd tests, the error study and the 3-epoch runs on 4,000 photos with each
# convolution (a few minutes each on 2 cores). The full default-recipe run on the Winograd path
# (book/src/output/ch10-train-default-winograd.txt) takes as long as chapter 9's and is not rerun
# here; chapter 10 gives its command.
record ch10-test "drop_cargo_progress | keep_test_targets ch10_winograd" \
    env SIMD_CNN_REQUIRE_ISA=avx512 cargo ch10 --test ch10_winograd
record ch10-error drop_cargo_progress cargo run --release --example winograd_error
for conv in direct winograd; do
    record "ch10-train-$conv" drop_cargo_progress cargo run --release --example train_catdog -- \
        --conv "$conv" --limit 4000 --epochs 3 --seed 0 --save "runs/ch10/$conv.safetensors" --overwrite
done
# Chapter 11: the bf16 and int8 tests and the 3-epoch runs on 4,000 photos in each precision
# (the bf16 run needs a CPU with AVX-512 BF16; elsewhere its record is the one-line refusal).
record ch11-bf16-test "drop_cargo_progress | keep_test_targets ch11_bf16" cargo ch11 --test ch11_bf16
EXPECT=1 record ch11-bf16-refuse drop_cargo_progress env SIMD_CNN_MAX_ISA=avx2 \
    cargo run --release --example train_catdog -- --precision bf16 --limit 100 --epochs 1 --save runs/ch11/refused.safetensors
record ch11-int8-test "drop_cargo_progress | keep_test_targets ch11_int8" cargo ch11 --test ch11_int8
for precision in fp32 bf16; do
    record "ch11-train-$precision" drop_cargo_progress cargo run --release --example train_catdog -- \
        --precision "$precision" --limit 4000 --epochs 3 --seed 0 --save "runs/ch11/$precision.safetensors" --overwrite
done

# Chapter 11: the exp and asm tests, the error of each exp over every f32, and the race of the
# hand-written AVX-512 tile against the compiler's on conv2 and conv3 (the full report, with
# every layer, is scripts/update-bench-report.sh's). The annotated loops and the llvm-mca table
# are scripts/asm-listings.sh's.
record ch11-test "drop_cargo_progress | keep_test_targets ch11_exp ch11_asm" \
    env SIMD_CNN_REQUIRE_ISA=avx512 cargo ch11 --test ch11_exp --test ch11_asm
record ch11-exp-error drop_cargo_progress cargo run --release --example exp_error
# bench_report writes its JSON only into a folder that exists.
mkdir -p runs/ch11
for layer in conv2 conv3; do
    record "ch11-race-$layer" drop_cargo_progress cargo run --release --example bench_report -- \
        --only "${layer}_forward" --runs 9 --json-out "runs/ch11/race-$layer.json"
done

WEIGHTS=runs/improved/catdog.safetensors
if [[ -f $WEIGHTS ]]; then
    # The first two cats and the first three dogs that the improved run (seed 0) held out for
    # validation, and a file that is not a photo.
    photos=(Cat/1.jpg Cat/5.jpg Dog/1.jpg Dog/19.jpg Dog/20.jpg)
    record ch9-predict drop_cargo_progress cargo run --release --example predict -- --weights "$WEIGHTS" \
        "${photos[@]/#/data/catdog/PetImages/}" data/README.md
    if wanted ch9-pictures; then
        rm -rf runs/pictures
        record ch9-pictures drop_cargo_progress cargo run --release --example pictures -- --weights "$WEIGHTS" \
            --photo data/catdog/PetImages/Dog/5.jpg --out-dir runs/pictures
        mkdir -p book/src/charts
        cp runs/pictures/*.png book/src/charts/
    fi
elif wanted ch9-predict || wanted ch9-pictures; then
    echo "update-book-outputs: no $WEIGHTS; ch9-predict and ch9-pictures left as they are" >&2
fi

# Chapter 11: the int8 network beside the fp32 one on the 4,000 validation photos of chapter 10's
# full Winograd run, with that run's weights (chapter 10 gives its command); left as it is when the
# file is missing.
WINOGRAD_WEIGHTS=runs/winograd/catdog.safetensors
if [[ -f $WINOGRAD_WEIGHTS ]]; then
    record ch11-predict-int8 drop_cargo_progress cargo run --release --example predict -- \
        --weights "$WINOGRAD_WEIGHTS" --validation data/catdog --int8 --quiet
elif wanted ch11-predict-int8; then
    echo "update-book-outputs: no $WINOGRAD_WEIGHTS; ch11-predict-int8 left as it is" >&2
fi
