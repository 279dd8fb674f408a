#!/usr/bin/env bash
# Fails when a C++/CUDA source differs from .clang-format (clang-format 14, Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed; skipped" >&2; exit 0; }
git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh' | xargs clang-format --dry-run --Werror
echo "check-format: all sources formatted"
