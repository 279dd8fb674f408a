#!/usr/bin/env bash
# Installs lathe's build and test dependencies from Debian 12 packages.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds ffmpeg, sox and the warzone2100-music catalog)
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
pkgs=(
  build-essential cmake ninja-build pkg-config
  libsndfile1-dev libflac-dev libtbb-dev libspdlog-dev libfmt-dev
  libgtest-dev libfftw3-dev libsoxr-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libebur128-dev clang-format
  libxxhash-dev  # resume knows inputs by an XXH3 hash of their bytes
  libyaml-cpp-dev  # tests/host/deploy_test.cpp reads the Kubernetes manifest
  slurm-wlm munge  # tests/slurm: a one-node Slurm cluster runs the job-array script
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(ffmpeg sox warzone2100-music flac python3 libbenchmark-dev time)  # bench/: catalog runs, Google Benchmark, peak RSS
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
