#!/usr/bin/env bash
# Checks every {{#include FILE:ANCHOR}} in book/src: FILE must exist and contain both
# `ANCHOR: name` and `ANCHOR_END: name`. mdbook includes nothing, silently, for an anchor it
# cannot find, so a renamed or deleted anchor would otherwise leave an empty listing in the book.
set -euo pipefail
cd "$(dirname "$0")/../book/src"

status=0
while IFS= read -r hit; do
    page=${hit%%:*}
    spec=${hit#*\{\{#include }
    spec=${spec%\}\}*}
    file=${spec%%:*}
    anchor=
    [[ $spec == *:* ]] && anchor=${spec#*:}
    path=$(dirname "$page")/$file
    if [[ ! -f $path ]]; then
        echo "$page: {{#include $spec}}: no such file $path" >&2
        status=1
    elif [[ -n $anchor && ! $anchor =~ ^[0-9:]+$ ]]; then
        if ! grep -Eq "ANCHOR:[[:space:]]*$anchor([^A-Za-z0-9_-]|\$)" "$path" ||
            ! grep -Eq "ANCHOR_END:[[:space:]]*$anchor([^A-Za-z0-9_-]|\$)" "$path"; then
            echo "$page: {{#include $spec}}: anchor '$anchor' not found in $path" >&2
            status=1
        fi
    fi
done < <(grep -o '{{#include [^}]*}}' -- *.md | sed 's/^\([^:]*\):/\1:/')

if ((status == 0)); then
    echo "check-book-includes: every include resolves"
fi
exit "$status"
