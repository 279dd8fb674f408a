#!/usr/bin/env bash
# Installs dependencies, builds lathe, and masters the bundled demo catalog (synthesized at
# build time) to every delivery profile.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${LATHE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LATHE_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)" --target lathe demo_catalog
set +e
"$build/lathe" master "$build/demo-catalog/manifest.csv" --out "$build/demo-out" --config-dir configs
status=$?
set -e
echo
"$build/lathe" formats --config-dir configs
exit $status
