#!/usr/bin/env bash
# Fails when a C++/CUDA source differs from .clang-format (clang-format 14, Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed; skipped" >&2; exit 0; }
git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' '*.cu' '*.cuh' |
    while read -r f; do [[ -f $f ]] && echo "$f"; done | sort -u | xargs clang-format --dry-run --Werror
echo "check-format: all sources formatted"
