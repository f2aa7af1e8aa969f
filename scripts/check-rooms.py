#!/usr/bin/env python3
"""Checks the house rule "one room per chapter": no code imports from a later chapter.

Every module of the crate belongs to the chapter of the `#[cfg(feature = "chN")]` on its `mod`
line, or, without one, to the chapter of the module that declares it (`src/lib.rs`'s modules
without a cfg belong to chapter 1). A module of chapter N may use modules of chapters 1..N only:
each path `crate::a::b::...` (or `super::...`) in its code is resolved to the longest module it
names, and a module of a later chapter is reported as

    FILE:LINE: chapter N module `x` uses `crate::y` of chapter M > N

A line that carries its own `#[cfg(feature = "chM")]` (a `use`, a kernel-table arm), or sits in
an inline `mod x { .. }` that does, counts as chapter M. The tests,
examples and benches are checked the same way against the chapter of their `required-features`
in Cargo.toml (paths `simd_cnn::...`). Exits 1 on any report.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

CHAPTER = re.compile(r'feature\s*=\s*"ch(\d+)"')
MOD_LINE = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;")
USE_LINE = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?use\b")
PATH_START = re.compile(r"\b(crate|super|simd_cnn)::")


def strip_comments(line):
    """The line without a `//` comment (string literals holding `//` are rare enough here)."""
    return line.split("//", 1)[0]


def gate(lines, i):
    """The chapter of the `#[cfg(...)]` attributes directly above line `i`, if any."""
    chapters = []
    j = i - 1
    while j >= 0 and lines[j].strip().startswith(("#[", "///", "//")):
        chapters += [int(n) for n in CHAPTER.findall(lines[j])]
        j -= 1
    return max(chapters) if chapters else None


def module_file(parent_file, name):
    """The file of module `name` declared in `parent_file`."""
    folder = parent_file.parent if parent_file.name in ("lib.rs", "mod.rs") else parent_file.with_suffix("")
    for candidate in (folder / f"{name}.rs", folder / name / "mod.rs"):
        if candidate.exists():
            return candidate
    return None


def modules():
    """{module path (tuple): (file, chapter)} for every module of the crate."""
    found = {(): (SRC / "lib.rs", 1)}
    todo = [()]
    while todo:
        path = todo.pop()
        file, chapter = found[path]
        lines = file.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MOD_LINE.match(line)
            if not m:
                continue
            child = module_file(file, m.group(1))
            if child is None:
                continue
            g = gate(lines, i)
            found[path + (m.group(1),)] = (child, max(chapter, g or chapter))
            todo.append(path + (m.group(1),))
    return found


def expand(text, start, segs=()):
    """The paths of the use tree that starts at `text[start:]` (after `crate::`), as lists of
    segments: `a::{b, c::d}` gives [a, b], [a, c, d]; and the index where the tree ends."""
    segs, i = list(segs), start
    while True:
        rest = text[i:].lstrip()
        i = len(text) - len(rest)
        if rest.startswith("{"):
            paths, i = [], i + 1
            while True:
                sub, i = expand(text, i, segs)
                paths += sub
                rest = text[i:].lstrip()
                i = len(text) - len(rest) + 1
                if not rest.startswith(","):
                    return paths, i
                if text[i:].lstrip().startswith("}"):
                    return paths, text.index("}", i) + 1
        m = re.match(r"(\w+)\s*(::)?", rest)
        if not m:
            return [segs], i
        segs.append(m.group(1))
        i += m.end()
        if not m.group(2):
            return [segs], i


def resolve(mods, segs):
    """The longest module named by the start of `segs`."""
    best = ()
    for n in range(1, len(segs) + 1):
        if tuple(segs[:n]) in mods:
            best = tuple(segs[:n])
    return best


def statements(lines):
    """(line number, chapter gate, text) of each statement, `use` trees joined over lines. The
    gate is that of the attributes directly above the statement (a `use`, a kernel-table arm)
    or of the inline `mod x { .. }` around it."""
    scopes = []  # (brace depth at which an inline gated module closes, its chapter)
    depth, i = 0, 0
    while i < len(lines):
        line = strip_comments(lines[i])
        start, text = i, line
        if USE_LINE.match(line):
            while ";" not in text and i + 1 < len(lines):
                i += 1
                text += " " + strip_comments(lines[i])
        g = gate(lines, start)
        outer = max((c for _, c in scopes), default=None)
        level = max(c for c in (g, outer, 0) if c is not None)
        yield start, level or None, text
        if re.match(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{", line) and g:
            scopes.append((depth, g))
        depth += text.count("{") - text.count("}")
        scopes = [(d, c) for d, c in scopes if depth > d]
        i += 1


def check_file(mods, file, chapter, here, prefix, label):
    problems = []
    lines = file.read_text(encoding="utf-8").splitlines()
    for n, g, text in statements(lines):
        level = max(chapter, g or 0)
        for m in PATH_START.finditer(text):
            root = m.group(1)
            if root != prefix and not (root == "super" and here is not None):
                continue
            for segs in expand(text, m.end())[0]:
                if root == "super":
                    base = list(here[:-1])
                    while segs and segs[0] == "super":
                        base, segs = base[:-1], segs[1:]
                    segs = base + segs
                target = resolve(mods, segs)
                used = mods[target][1]
                if used > level:
                    name = "::".join(target)
                    problems.append(
                        f"{file.relative_to(ROOT)}:{n + 1}: chapter {level} {label} uses `{prefix}::{name}` "
                        f"of chapter {used}"
                    )
    return problems


def targets():
    """(file, chapter) of every test, example and bench listed in Cargo.toml."""
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    for block in re.split(r"\n(?=\[\[)", text):
        path = re.search(r'^path\s*=\s*"([^"]+)"', block, re.M)
        feats = re.search(r"^required-features\s*=\s*\[([^\]]*)\]", block, re.M)
        if block.startswith("[[") and path and feats:
            chapters = [int(n) for n in re.findall(r'"ch(\d+)"', feats.group(1))]
            if chapters:
                yield ROOT / path.group(1), max(chapters)


def main():
    mods = modules()
    problems = []
    for path, (file, chapter) in sorted(mods.items()):
        name = "::".join(path) or "the crate root"
        problems += check_file(mods, file, chapter, path, "crate", f"module `{name}`")
    for file, chapter in targets():
        problems += check_file(mods, file, chapter, None, "simd_cnn", f"target `{file.stem}`")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} use(s) of a later chapter's module (see scripts/check-rooms.py)", file=sys.stderr)
        return 1
    print(f"{len(mods)} modules: none uses a module of a later chapter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
