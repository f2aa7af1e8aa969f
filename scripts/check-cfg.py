#!/usr/bin/env python3
"""Checks the house rule "gate modules, never statements" (GUIDE.md, section 2).

A chapter feature (`feature = "chN"`) may appear in a `#[cfg(...)]` only where the attribute
gates a whole module or an import, or in an arm of the one dispatch of the kernel tables:

  #[cfg(feature = "ch9")]            followed by `mod x;`, `pub mod x;`, `pub(crate) mod x {`,
                                                 `use ...;`, `pub use ...;`
  #[cfg(all(..., feature = "ch5"))]  followed by `Isa::Avx2 => ...`   in src/kernels/table.rs
  Isa::Avx2 => cfg!(all(..., feature = "ch5")),                        in src/kernels/isa.rs
                                       (`Isa::is_compiled`: which of those arms exist)

Anything else (a cfg on a function, a statement or a struct field, `cfg!(feature = ...)` in an
expression, `cfg_attr(feature = "chN", ...)`) is reported as FILE:LINE with the line, and the
script exits 1. Test, bench and example targets gate themselves with `required-features` in
Cargo.toml instead.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["src", "tests", "examples", "benches"]
DISPATCH = Path("src/kernels/table.rs")
COMPILED = Path("src/kernels/isa.rs")

CHAPTER = re.compile(r'feature\s*=\s*"ch\d+"')
CFG_ATTR = re.compile(r"^\s*#\[cfg\(")
GATED_ITEM = re.compile(r"^\s*(pub(\([a-z]+\))?\s+)?(mod|use)\b")
DISPATCH_ARM = re.compile(r"^\s*Isa::\w+\s*=>")
COMPILED_ARM = re.compile(r"^\s*Isa::\w+\s*=>\s*cfg!\(")


def next_code_line(lines, i):
    """The first line after `i` that is neither blank, a comment nor another attribute."""
    for line in lines[i + 1 :]:
        s = line.strip()
        if s and not s.startswith(("//", "#[")):
            return line
    return ""


def check(path, rel):
    problems = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not CHAPTER.search(line) or line.lstrip().startswith("//"):
            continue
        if CFG_ATTR.match(line):
            item = next_code_line(lines, i)
            if GATED_ITEM.match(item):
                continue
            if rel == DISPATCH and DISPATCH_ARM.match(item):
                continue
            why = "gates something other than a module, an import or a kernel-table arm"
        elif rel == COMPILED and COMPILED_ARM.match(line):
            continue
        else:
            why = "a chapter feature outside a #[cfg] on a module, an import or a kernel-table arm"
        problems.append(f"{rel}:{i + 1}: {why}:\n    {line.strip()}")
    return problems


def main():
    problems = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.rs")):
            problems += check(path, path.relative_to(ROOT))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} chapter gate(s) on something other than a module (see scripts/check-cfg.py)", file=sys.stderr)
        return 1
    print("chapter features gate only modules, imports and kernel-table arms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
