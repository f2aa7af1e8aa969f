#!/usr/bin/env bash
# Regenerates book/src/asm/: the machine code of one hot loop of each kernel the book reads,
# taken from a --release build, so that no listing of assembly in the book is typed by hand.
#
#   scripts/asm-listings.sh            # every listing
#   scripts/asm-listings.sh avx512     # only the listings whose names start with avx512
#   scripts/asm-listings.sh ch11       # only chapter 11's annotations and llvm-mca table
#
# How a loop is found: the named function is disassembled with objdump (Intel syntax); every
# backward jump closes a loop; of the innermost loops, the first (lowest address) with exactly
# the given number of multiplies (mulss, mulps or an FMA) and of broadcasts (vbroadcastss, or
# shufps as SSE2 broadcasts) is the one written out, or with `outer` the loop around it.
# Addresses are replaced by labels, alignment padding (nop) is dropped, and a first comment
# line names the function and the compiler. Another compiler version may schedule or allocate
# registers differently, or not produce a loop of that shape at all: the script then stops with
# a message, and the text that reads the listing has to be checked against the new one.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=book/src/asm
BIN=target/release/examples/train_mnist
mkdir -p "$OUT"
export CARGO_TERM_COLOR=never

ONLY=("$@")

# Whether output NAME was asked for (all of them when no argument was given).
source scripts/wanted.sh

for tool in objdump nm; do
    command -v "$tool" >/dev/null || {
        echo "asm-listings: $tool not found (it is in GNU binutils)" >&2
        exit 1
    }
done

# The example links every kernel table, so every kernel is in it.
cargo build --release --example train_mnist >&2
RUSTC=$(rustc -vV | awk '/^release:/ { r = $2 } /^LLVM version:/ { l = $3 } END { printf "rustc %s, LLVM %s", r, l }')

# Finds the loop (see the top of this file) in objdump's output and prints it.
read -r -d '' LOOP_AWK <<'AWK' || true
# Hexadecimal text to a number (POSIX awk has no strtonum).
function hex(s,    v, i) {
    v = 0
    for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return v
}
/^ +[0-9a-f]+:\t/ {
    n++
    split($0, part, "\t")
    a = part[1]
    gsub(/[ :]/, "", a)
    addr[n] = hex(a)
    text[n] = part[2]
    sub(/ +#.*$/, "", text[n])
    if (text[n] ~ /^j[a-z]+ +[0-9a-f]+ </) {
        split(text[n], w, / +/)
        target = hex(w[2])
        if (target <= addr[n]) { loops++; lo[loops] = target; hi[loops] = addr[n] }
    }
}
END {
    pick = 0
    for (l = 1; l <= loops; l++) {
        inner = 1
        for (m = 1; m <= loops; m++)
            if (m != l && lo[m] >= lo[l] && hi[m] <= hi[l]) inner = 0
        if (!inner) continue
        nm = 0; nb = 0
        for (i = 1; i <= n; i++) {
            if (addr[i] < lo[l] || addr[i] > hi[l]) continue
            if (text[i] ~ /^v?(mulss|mulps|vfmadd)/ || text[i] ~ /^vfmadd/) nm++
            if (text[i] ~ /^(vbroadcastss|shufps)/) nb++
        }
        if (nm == muls && nb == bcasts && (pick == 0 || lo[l] < lo[pick])) pick = l
    }
    if (pick == 0) { print "no innermost loop with " muls " multiplies and " bcasts " broadcasts" > "/dev/stderr"; exit 1 }
    start = lo[pick]; stop = hi[pick]
    label[start] = "inner"
    if (mode == "outer") {
        best = 0
        for (m = 1; m <= loops; m++)
            if (m != pick && lo[m] <= start && hi[m] >= stop && (best == 0 || hi[m] - lo[m] < hi[best] - lo[best])) best = m
        if (best == 0) { print "the loop has no loop around it" > "/dev/stderr"; exit 1 }
        start = lo[best]; stop = hi[best]
        label[start] = "outer"
    }
    print header
    for (i = 1; i <= n; i++) {
        if (addr[i] < start || addr[i] > stop) continue
        if (text[i] ~ /nop/) continue
        if (addr[i] in label) print label[addr[i]] ":"
        t = text[i]
        if (t ~ /^j[a-z]+ +[0-9a-f]+ </) {
            split(t, w, / +/)
            target = hex(w[2])
            t = w[1] " " ((target in label) ? label[target] : sprintf("0x%x", target))
        }
        gsub(/  +/, " ", t)
        print "    " t
    }
}
AWK

# The mangled name of the function whose demangled path ends in ::$1.
mangled() {
    paste -d ' ' <(nm "$BIN") <(nm -C "$BIN") |
        awk -v want="simd_cnn::kernels::$1" '$2 ~ /^[tT]$/ && $NF == want { found = $3 } END { print found }'
}

# listing NAME FUNCTION MULTIPLIES BROADCASTS [outer]
listing() {
    local name=$1 function=$2 muls=$3 bcasts=$4 mode=${5:-inner}
    wanted "$name" || return 0
    local symbol
    symbol=$(mangled "$function")
    if [[ -z $symbol ]]; then
        echo "asm-listings: no function simd_cnn::kernels::$function in $BIN" >&2
        exit 1
    fi
    objdump -d --no-show-raw-insn -M intel --disassemble="$symbol" "$BIN" |
        awk -v muls="$muls" -v bcasts="$bcasts" -v mode="$mode" \
            -v header="; simd_cnn::kernels::$function ($RUSTC)" "$LOOP_AWK" >"$OUT/$name.tmp"
    mv "$OUT/$name.tmp" "$OUT/$name.txt"
    echo "asm-listings: $OUT/$name.txt ($(($(wc -l <"$OUT/$name.txt") - 1)) lines)" >&2
}

# Chapter 4: what the compiler makes of the scalar kernels, and the SSE convolution tile.
listing scalar-conv2d-forward scalar::conv2d::conv2d_forward 2 0
listing scalar-linear-forward scalar::linear::linear_forward 4 0
listing sse-conv2d-forward x86::sse::conv2d::conv2d_forward 10 5
# Chapter 5: the AVX2 convolution tile.
listing avx2-conv2d-forward x86::avx2::conv2d::conv2d_forward 12 6
# Chapter 6: the AVX-512 convolution tile and fc1's forward pass.
listing avx512-conv2d-forward x86::avx512::conv2d::conv2d_forward 24 6
listing avx512-linear-forward x86::avx512::linear::linear_forward 12 0
# Chapter 11: the same tile written with asm!, from the example that races it (train_mnist does
# not link the asm table).
if wanted avx512-asm-conv2d-forward; then
    cargo build --release --example bench_report >&2
    BIN=target/release/examples/bench_report listing avx512-asm-conv2d-forward x86::avx512::asm::conv2d_forward 24 6
fi

# Chapter 11: the three convolution loops annotated line by line (scripts/annotate-asm.py), and
# llvm-mca's prediction for them set against the share of the peak measured in the benchmark
# report of the book and of any second machine (scripts/mca-table.py; book/src/output/bench-report.json is written by
# scripts/update-bench-report.sh). llvm-mca is not needed by anything else: without one that
# knows znver5 (LLVM 19 or later: apt-get install llvm-19, or LLVM_MCA=/path/to/llvm-mca) the
# table is skipped with a message.
BOOK_OUT=book/src/output
for isa in sse avx2 avx512; do
    if wanted "ch11-annotated-$isa"; then
        scripts/annotate-asm.py "$OUT/$isa-conv2d-forward.txt" >"$BOOK_OUT/ch11-annotated-$isa.txt"
        echo "asm-listings: $BOOK_OUT/ch11-annotated-$isa.txt" >&2
    fi
done
if wanted ch11-mca; then
    MCA=${LLVM_MCA:-$(command -v llvm-mca-19 || command -v llvm-mca || true)}
    if [[ -z $MCA || $("$MCA" -mtriple=x86_64 -mcpu=help </dev/null 2>&1) != *znver5* ]]; then
        echo "asm-listings: no llvm-mca that knows znver5 (set LLVM_MCA or apt-get install llvm-19): ch11-mca skipped" >&2
    else
        # The book's report and any second machine's (update-bench-report.sh --machine NAME).
        scripts/mca-table.py "$MCA" "$BOOK_OUT"/bench-report.json "$BOOK_OUT"/bench-report-*.json "$BOOK_OUT" \
            >"$BOOK_OUT/ch11-mca.md"
        echo "asm-listings: $BOOK_OUT/ch11-mca.md ($("$MCA" --version | grep -o 'LLVM version [0-9.]*'))" >&2
    fi
fi
