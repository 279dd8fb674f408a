#!/usr/bin/env bash
# Downloads, HERE (a Debian bookworm machine with network), the Debian packages that lathe
# builds and links against, into ./.deb, so that a device call can carry them (`carry: [".deb"]`)
# to a GPU machine that has CUDA but no package registry. bench/gpu_run.sh unpacks them there
# with `dpkg -x` into a private prefix (never into /).
#
# What is fetched: the runtime libraries and their -dev packages (headers, .so links, CMake and
# pkg-config files) of every dependency in CMakeLists.txt, the codec libraries libsndfile pulls
# in, GoogleTest (the GPU tests) and pkgconf (CMake's FindPkgConfig needs a pkg-config binary;
# the CUDA image may have none). No CUDA packages: the device has its own toolkit. Not fetched:
# Google Benchmark (optional; lathe_stages_bench is a CPU benchmark and is skipped without it).
#
# Usage: bench/fetch_device_debs.sh        (from the repository root; prints the total size)
set -euo pipefail

cd "$(dirname "$0")/.."
dest=.deb
mkdir -p "$dest"

packages=(
  # audio I/O: libsndfile and the codecs it links (its sndfile.pc Requires.private them all)
  libsndfile1 libsndfile1-dev
  libflac12 libflac-dev
  libogg0 libogg-dev
  libvorbis0a libvorbisenc2 libvorbisfile3 libvorbis-dev
  libopus0 libopus-dev
  libmpg123-0 libmpg123-dev
  libmp3lame0
  # DSP
  libfftw3-single3 libfftw3-double3 libfftw3-dev
  libsoxr0 libsoxr-dev libgomp1
  libxxhash0 libxxhash-dev  # resume: content hashes
  # host pipeline
  libtbb12 libtbbmalloc2 libtbbbind-2-5 libtbb-dev
  libfmt9 libfmt-dev
  libspdlog1.10 libspdlog-dev
  libtomlplusplus3 libtomlplusplus-dev
  libcli11-dev nlohmann-json3-dev
  # tests and measurement
  libebur128-1 libebur128-dev
  libgtest-dev libgmock-dev
  libyaml-cpp0.7 libyaml-cpp-dev  # tests/host/deploy_test.cpp
  # pkg-config for CMake's FindPkgConfig
  pkgconf pkgconf-bin libpkgconf3
)

fetch() { (cd "$dest" && apt-get download "$@"); }
if ! fetch "${packages[@]}"; then
  echo "apt-get download failed; refreshing the package lists once and retrying" >&2
  apt-get update -qq
  fetch "${packages[@]}"
fi

# One version per package: an older download left next to a newer one would be unpacked too.
python3 - "$dest" <<'EOF'
import collections, os, sys
d = sys.argv[1]
by_name = collections.defaultdict(list)
for f in os.listdir(d):
    if f.endswith(".deb"):
        by_name[f.split("_")[0]].append(f)
for name, files in by_name.items():
    if len(files) > 1:
        print(f"warning: several versions of {name}: {files}; keeping the newest file", file=sys.stderr)
        files.sort(key=lambda f: os.path.getmtime(os.path.join(d, f)))
        for f in files[:-1]:
            os.remove(os.path.join(d, f))
EOF

count=$(find "$dest" -maxdepth 1 -name '*.deb' | wc -l)
total=$(du -cb "$dest"/*.deb | tail -1 | cut -f1)
echo "$count packages, $((total / 1024)) KiB in $dest"
if ((total > 40 * 1024 * 1024)); then
  echo "warning: over 40 MiB; the working tree that travels is limited to 64 MiB" >&2
fi
