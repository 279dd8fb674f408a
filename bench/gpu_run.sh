#!/usr/bin/env bash
# The GPU run, in ONE device call (bench/README.md, "GPU"): runs ON THE DEVICE in the repository
# root, with the Debian packages of bench/fetch_device_debs.sh carried in ./.deb. In order:
#
#   unpack       .deb/*.deb into a private prefix (dpkg -x; never into /), CMake, pkg-config,
#                the compiler and the loader pointed at it
#   configure    Release, CUDA on, sm_90
#   build        only what the run needs: lathe, lathe_gpu_bench, lathe_transcode_ceiling and
#                the GPU suites (tests/gpu/), every core
#   ctest_gpu    the GPU suites only (ctest label "gpu"; CI runs the layout, emulation and host
#                suites), in parallel
#   gpu_bench    lathe_gpu_bench: copy ceilings, resident stages, resident chain, engine calls;
#                line-buffered, one JSON record per stage on its own line as it finishes
#                (gpu_bench.log), gpu_bench.json rewritten after each
#   make_catalog, ceiling, master_gpu, master_cpu
#                a small synthesized catalog (LATHE_BENCH_SONGS x LATHE_BENCH_SECONDS s, 44.1 kHz
#                24-bit FLAC): the decode+encode ceiling, then `lathe master --backend gpu` (which
#                fails a track rather than falling back) and `--backend cpu`, streaming + cd
#   memcheck, racecheck
#                compute-sanitizer on two GPU suites
#   summary      $OUT/summary.json (x realtime per figure, masters by backend and the reasons of
#                every CPU render in the GPU run, step statuses), also copied with the bench JSON
#                to bench/results/ under the date and the device's name
#
# A failed step does not stop the later ones. Each step has its own time limit (STEP_LIMIT
# below; their sum is the run's budget, at most 480 s, so the run fits twice in a 15-minute GPU
# reservation) and never runs past what is left of LATHE_RUN_BUDGET_S.
#
# Options:
#   --dry-run          print the steps, their limits and the total; run nothing
#   --configure-only   stop after configuring
#   --no-cuda          configure with -DLATHE_CUDA=OFF
# Environment: OUT (default ./out-gpu-run), LATHE_JOBS (nproc), LATHE_BENCH_SONGS (32),
#   LATHE_BENCH_SECONDS (120), LATHE_DEB_PREFIX (/tmp/prefix), LATHE_BUILD_DIR (build-gpu),
#   LATHE_WORK_DIR (/tmp/lathe-bench), LATHE_CMAKE_EXTRA (more cmake -D options),
#   LATHE_GIT_COMMIT (recorded in the JSON), LATHE_RUN_BUDGET_S (the sum of the step limits).

# Seconds each step may take, in the order they run.
STEP_ORDER=(unpack configure build ctest_gpu gpu_bench make_catalog ceiling master_gpu master_cpu memcheck
  racecheck summary)
declare -A STEP_LIMIT=([unpack]=25 [configure]=35 [build]=140 [ctest_gpu]=50 [gpu_bench]=60 [make_catalog]=15
  [ceiling]=15 [master_gpu]=35 [master_cpu]=30 [memcheck]=30 [racecheck]=25 [summary]=10)
STEP_TOTAL=0
for name in "${STEP_ORDER[@]}"; do STEP_TOTAL=$((STEP_TOTAL + STEP_LIMIT[$name])); done

set -uo pipefail

T0=$(date +%s)
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
CONFIGURE_ONLY=0
USE_CUDA=ON
for a in "$@"; do
  case $a in
    --dry-run)
      printf '%-14s %8s\n' step limit_s
      for name in "${STEP_ORDER[@]}"; do printf '%-14s %8d\n' "$name" "${STEP_LIMIT[$name]}"; done
      printf '%-14s %8d\n' total "$STEP_TOTAL"
      exit 0
      ;;
    --configure-only) CONFIGURE_ONLY=1 ;;
    --no-cuda) USE_CUDA=OFF ;;
    *) echo "unknown option $a" >&2; exit 1 ;;
  esac
done

OUT=${OUT:-$ROOT/out-gpu-run}
BUDGET_S=${LATHE_RUN_BUDGET_S:-$STEP_TOTAL}
JOBS=${LATHE_JOBS:-$(nproc)}
SONGS=${LATHE_BENCH_SONGS:-32}
SONG_S=${LATHE_BENCH_SECONDS:-120}
PREFIX=${LATHE_DEB_PREFIX:-/tmp/prefix}
BUILD=${LATHE_BUILD_DIR:-build-gpu}
WORK=${LATHE_WORK_DIR:-/tmp/lathe-bench}
ARCH=x86_64-linux-gnu
mkdir -p "$OUT" "$WORK"
STEPS=$WORK/steps.tsv
: >"$STEPS"
RUNLOG=$OUT/run.log

log() { echo "[$(date +%T) +$(($(date +%s) - T0))s] $*" | tee -a "$RUNLOG"; }
remaining() { echo $((BUDGET_S - ($(date +%s) - T0))); }

# step NAME LOGFILE command...: runs the command under `timeout`, limited to
# min(STEP_LIMIT[NAME], what is left of the budget), appending its output to LOGFILE; records
# NAME, exit status and seconds in $STEPS. Skips when under 5 s are left. A shell function
# runs without the time limit.
step() {
  local name=$1 logf=$2
  shift 2
  local limit=${STEP_LIMIT[$name]:?"step $name has no limit in STEP_LIMIT"}
  local rem
  rem=$(remaining)
  if ((rem < 5)); then
    log "SKIP  $name: ${rem}s left of the budget"
    printf '%s\tskipped\t0\n' "$name" >>"$STEPS"
    return 125
  fi
  ((limit > rem)) && limit=$rem
  log "START $name (limit ${limit}s): $*"
  echo "===== $name: $* =====" >>"$logf"
  local t0 t1 rc
  t0=$(date +%s.%N)
  if declare -F "$1" >/dev/null; then
    "$@" >>"$logf" 2>&1  # a shell function (timeout cannot run one); short host work only
  else
    timeout --kill-after=10 "$limit" "$@" >>"$logf" 2>&1
  fi
  rc=$?
  t1=$(date +%s.%N)
  local dur
  dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  ((rc == 124 || rc == 137)) && log "TIMEOUT $name after ${limit}s"
  log "END   $name rc=$rc in ${dur}s"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$dur" >>"$STEPS"
  return $rc
}

# ---- 0. the machine --------------------------------------------------------------------------
log "lathe GPU run; budget ${BUDGET_S}s, jobs $JOBS, catalog $SONGS x ${SONG_S}s, OUT=$OUT"
{
  echo "===== machine"
  nvidia-smi 2>&1 || echo "nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv 2>&1 || true
  grep -h PRETTY_NAME /etc/os-release 2>/dev/null
  uname -a
  echo "nproc: $(nproc)"
  free -g 2>/dev/null | head -2
  df -h /tmp 2>/dev/null | tail -1
  (ldd --version 2>&1 | head -1)
  for tool in g++ nvcc cmake ninja python3 pkg-config dpkg; do
    printf '%-10s %s\n' "$tool" "$(command -v $tool || echo MISSING) $($tool --version 2>&1 | head -1)"
  done
  echo "libgomp: $(ldconfig -p 2>/dev/null | grep -c 'libgomp.so.1 ') in the loader cache"
  echo "uptime: $(uptime)"
} >>"$RUNLOG" 2>&1

# ---- 1. the carried packages, into a private prefix ---------------------------------------------
unpack() {
  rm -rf "$PREFIX" "$PREFIX-fallback"
  mkdir -p "$PREFIX" "$PREFIX-fallback"
  local n=0 f dest
  for f in "$ROOT"/.deb/*.deb; do
    [[ -e $f ]] || { echo "no .deb/*.deb: run bench/fetch_device_debs.sh here and carry .deb"; return 1; }
    dest=$PREFIX
    # libgomp only where the system has none: gcc 12's copy must not shadow a newer system one.
    [[ $(basename "$f") == libgomp1_* ]] && dest=$PREFIX-fallback
    if command -v dpkg >/dev/null; then
      dpkg -x "$f" "$dest" || return 1
    else
      (cd "$dest" && ar p "$f" "$(ar t "$f" | grep '^data.tar')" | tar -x -a -f - 2>/dev/null ||
        ar p "$f" "$(ar t "$f" | grep '^data.tar')" | tar -xJ) || return 1
    fi
    n=$((n + 1))
  done
  # pkg-config files name /usr; point them at the prefix (prefix=/usr, libdir=/usr/lib/...,
  # and soxr.pc's literal -L/usr/lib/... -I/usr/include).
  find "$PREFIX/usr/lib/$ARCH/pkgconfig" "$PREFIX/usr/share/pkgconfig" -name '*.pc' \
    -exec sed -i -e "s#^\([A-Za-z_]*\)=/usr#\1=$PREFIX/usr#" -e "s#-\([IL]\)/usr/#-\1$PREFIX/usr/#g" {} + 2>/dev/null
  echo "unpacked $n packages into $PREFIX"
  du -sh "$PREFIX"
}
step unpack "$RUNLOG" unpack

export PATH="$PATH:$PREFIX/usr/bin"
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"
LIBS="$PREFIX/usr/lib/$ARCH:$PREFIX/lib/$ARCH"
ldconfig -p 2>/dev/null | grep -q 'libgomp.so.1 ' || LIBS="$LIBS:$PREFIX-fallback/usr/lib/$ARCH"
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$PREFIX/usr/lib/$ARCH${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$PREFIX/usr/include${CPATH:+:$CPATH}"
# Only the carried .pc files: a system one of another version must not be mixed in.
export PKG_CONFIG_LIBDIR="$PREFIX/usr/lib/$ARCH/pkgconfig:$PREFIX/usr/share/pkgconfig"
export PKG_CONFIG_PATH="$PKG_CONFIG_LIBDIR"
# Config-mode packages live in lib/<arch>/cmake and share/cmake: name those folders as prefixes
# too, so they are found even where CMake does not know the Debian multiarch layout.
export CMAKE_PREFIX_PATH="$PREFIX/usr;$PREFIX/usr/lib/$ARCH/cmake;$PREFIX/usr/share/cmake"
PKG_CONFIG_BIN=$(command -v pkg-config || command -v pkgconf || echo "$PREFIX/usr/bin/pkgconf")
log "pkg-config: $PKG_CONFIG_BIN ($("$PKG_CONFIG_BIN" --modversion sndfile 2>&1 | head -1) sndfile)"

# ---- 2. configure and build ----------------------------------------------------------------------
GEN=(-G Ninja)
command -v ninja >/dev/null || GEN=(-G "Unix Makefiles")
CUDA_ARGS=(-DLATHE_CUDA="$USE_CUDA")
[[ $USE_CUDA == ON ]] && CUDA_ARGS+=(-DCMAKE_CUDA_ARCHITECTURES=90)
read -r -a EXTRA <<<"${LATHE_CMAKE_EXTRA:-}"
step configure "$OUT/build.log" cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  "${CUDA_ARGS[@]}" -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG_BIN" "-DCMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH" "${EXTRA[@]}"
{
  echo "===== where each dependency was found"
  grep -E '^(TBB|fmt|spdlog|nlohmann_json|tomlplusplus|CLI11|GTest)_DIR:|^pkgcfg_lib_[A-Z0-9]+_[a-zA-Z0-9_+]+:FILEPATH' \
    "$BUILD/CMakeCache.txt" 2>/dev/null
} >>"$OUT/build.log"
if ((CONFIGURE_ONLY)); then
  log "configure-only: done"
  exit 0
fi

TARGETS=(lathe lathe_transcode_ceiling)
if [[ $USE_CUDA == ON ]]; then
  TARGETS+=(lathe_gpu_bench)
  for f in tests/gpu/*_test.cpp; do TARGETS+=("gpu_$(basename "$f" .cpp)"); done
fi
KEEP_GOING=(-k 0)
[[ ${GEN[1]} == Ninja ]] || KEEP_GOING=(-k)
step build "$OUT/build.log" cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" -- "${KEEP_GOING[@]}"

# ---- 3. the GPU suites, side by side (the device is shared; each suite is small) ------------------
step ctest_gpu "$OUT/ctest_gpu.log" ctest --test-dir "$BUILD" -L gpu -j 8 --no-tests=error --output-on-failure \
  --timeout 45

# ---- 4. the benchmark: one JSON record per stage on stdout as it finishes, the document after each --
export LATHE_GIT_COMMIT=${LATHE_GIT_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
step gpu_bench "$OUT/gpu_bench.log" "$BUILD/lathe_gpu_bench" --out "$OUT/gpu_bench.json" --tracks 32 --seconds 120 \
  --reps 5 --render-tracks 4 --render-reps 1

# ---- 5. end to end, GPU against CPU, on one small catalog ---------------------------------------------
RUNS=$OUT/runs.log
CAT=$WORK/catalog
rm -rf "$CAT" "$WORK/out-ceiling" "$WORK/out-gpu" "$WORK/out-cpu"
step make_catalog "$RUNS" "$BUILD/lathe_transcode_ceiling" --synth "$CAT" --count "$SONGS" --seconds "$SONG_S" \
  --jobs "$JOBS"
du -sh "$CAT" >>"$RUNS" 2>&1
step ceiling "$RUNS" "$BUILD/lathe_transcode_ceiling" "$CAT" --out "$WORK/out-ceiling" --jobs "$JOBS" \
  --report "$WORK/ceiling.json"
rm -rf "$WORK/out-ceiling"
step master_gpu "$RUNS" "$BUILD/lathe" master "$CAT" --out "$WORK/out-gpu" --formats streaming,cd --track-mode \
  --backend gpu --jobs "$JOBS" --log-format json
cp "$WORK/out-gpu/report.json" "$OUT/report_gpu.json" 2>/dev/null
step master_cpu "$RUNS" "$BUILD/lathe" master "$CAT" --out "$WORK/out-cpu" --formats streaming,cd --track-mode \
  --backend cpu --jobs "$JOBS" --log-format json
cp "$WORK/out-cpu/report.json" "$OUT/report_cpu.json" 2>/dev/null

# ---- 6. compute-sanitizer on two suites: out-of-bounds and uninitialized reads, shared-memory races ---
SAN=$OUT/sanitizer.log
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
step memcheck "$SAN" "$SANITIZER" --tool memcheck --leak-check full --error-exitcode 3 \
  "$BUILD/gpu_limiter_test" --gtest_brief=1
step racecheck "$SAN" "$SANITIZER" --tool racecheck --error-exitcode 3 "$BUILD/gpu_dynamics_test" --gtest_brief=1

# ---- 7. summary, and the results into bench/results/ ---------------------------------------------------
summarize() {
python3 - "$OUT" "$WORK" "$STEPS" "$JOBS" "$SONGS" "$SONG_S" "$ROOT/bench/results" <<'EOF'

import datetime, json, os, re, shutil, subprocess, sys

out, work, steps_file, jobs, songs, song_s, results_dir = sys.argv[1:8]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # a missing figure is reported, never invented
        return {"missing": f"{os.path.basename(path)}: {e}"}


def smi(field):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return None


steps = {}
for line in open(steps_file):
    name, rc, dur = line.rstrip("\n").split("\t")
    steps[name] = {"rc": rc, "seconds": float(dur)}

bench = load(os.path.join(out, "gpu_bench.json"))
ceiling = load(os.path.join(work, "ceiling.json"))
reports = {b: load(os.path.join(out, f"report_{b}.json")) for b in ("gpu", "cpu")}

ctest = None
try:
    m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", open(os.path.join(out, "ctest_gpu.log")).read())
    if m:
        ctest = {"passed_percent": int(m[1]), "failed": int(m[2]), "total": int(m[3])}
except OSError:
    pass


def master_figures(r):
    if "summary" not in r:
        return r
    s = r["summary"]
    passed = sum(1 for t in r.get("tracks", []) for o in t.get("outputs", {}).values() if o.get("pass"))
    total = sum(len(t.get("outputs", {})) for t in r.get("tracks", []))
    return {"backend": r.get("backend"), "x_realtime": s.get("x_realtime"), "wall_s": s.get("wall_s"),
            "audio_hours": s.get("audio_hours"), "tracks": s.get("tracks"), "succeeded": s.get("succeeded"),
            "failed": s.get("failed"), "qc_failed": s.get("qc_failed"), "masters_passed": f"{passed}/{total}",
            "threads": s.get("threads"), "masters_by_backend": s.get("masters_by_backend"),
            "cpu_reasons_in_gpu_run": s.get("cpu_reasons_in_gpu_run")}


def gpu_vs_cpu(g, c):
    """Largest differences between the GPU and CPU masters' measurements (same catalog)."""
    if "tracks" not in g or "tracks" not in c:
        return None
    cpu = {t["path"]: t for t in c["tracks"]}
    worst = {"integrated_lufs": 0.0, "true_peak_dbtp": 0.0, "gain_db": 0.0}
    compared = 0
    for t in g["tracks"]:
        u = cpu.get(t["path"])
        if not u:
            continue
        for fmt, o in t.get("outputs", {}).items():
            p = u.get("outputs", {}).get(fmt)
            if not p or "measured" not in o or "measured" not in p:
                continue
            compared += 1
            for k in ("integrated_lufs", "true_peak_dbtp"):
                worst[k] = max(worst[k], abs(o["measured"][k] - p["measured"][k]))
            try:
                worst["gain_db"] = max(worst["gain_db"], abs(o["chain"]["normalization"]["gain_db"] -
                                                             p["chain"]["normalization"]["gain_db"]))
            except (KeyError, TypeError):
                pass
    return {"masters_compared": compared, "max_abs_diff": worst}


sanitizer = []
try:
    sanitizer = re.findall(r"========= ERROR SUMMARY: (\d+) errors?", open(os.path.join(out, "sanitizer.log")).read())
except OSError:
    pass

dev = bench.get("device", {})
figures = {
    "chain_resident_sum_x_realtime": bench.get("chain_resident", {}).get("sum_of_stages", {}).get("x_realtime"),
    "chain_resident_sequence_x_realtime": bench.get("chain_resident", {}).get("sequence", {}).get("x_realtime"),
    "stages_x_realtime": {s["name"]: s["x_realtime"] for s in bench.get("stages", [])},
    "render_x_realtime": {r["profiles"]: r["x_realtime"] for r in bench.get("render", [])},
    "render_one_track_per_call_x_realtime": {r["profiles"]: (r.get("one_track_per_call") or {}).get("x_realtime")
                                             for r in bench.get("render", []) if r.get("one_track_per_call")},
    "end_to_end_gpu_x_realtime": master_figures(reports["gpu"]).get("x_realtime"),
    "end_to_end_cpu_x_realtime": master_figures(reports["cpu"]).get("x_realtime"),
    "decode_encode_ceiling_x_realtime": ceiling.get("x_realtime"),
}
g, c = figures["end_to_end_gpu_x_realtime"], figures["decode_encode_ceiling_x_realtime"]
r = figures["chain_resident_sum_x_realtime"]
targets = {
    "chain_resident_ge_100000x": None if r is None else r >= 100000,
    "end_to_end_gpu_ge_3600x": None if g is None else g >= 3600,
    "end_to_end_gpu_ge_80pct_of_ceiling": None if not (g and c) else g >= 0.8 * c,
    "end_to_end_gpu_over_ceiling": None if not (g and c) else round(g / c, 3),
}
summary = {
    "what": "lathe GPU benchmark run (bench/gpu_run.sh): one device call",
    "date": datetime.date.today().isoformat(),
    "git_commit": os.environ.get("LATHE_GIT_COMMIT"),
    "x_realtime_means": "seconds of 44.1 kHz stereo source audio per wall-clock second",
    "device": {"name": dev.get("name") or smi("name"), "driver": dev.get("driver_version") or smi("driver_version"),
               "memory_total": smi("memory.total"), "cuda_runtime": dev.get("cuda_runtime_version"),
               "sm_count": dev.get("sm_count")},
    "cpu_count": os.cpu_count(),
    "jobs": int(jobs),
    "catalog": {"songs": int(songs), "seconds_each": float(song_s), "format": "synthesized demo songs, 44.1 kHz "
                "stereo 24-bit FLAC, on local disk (page cache warm for every run)"},
    "figures": figures,
    "targets": targets,
    "ceilings": bench.get("ceilings"),
    "end_to_end": {"gpu": master_figures(reports["gpu"]), "cpu": master_figures(reports["cpu"]),
                   "ceiling": ceiling, "gpu_vs_cpu_masters": gpu_vs_cpu(reports["gpu"], reports["cpu"])},
    "gpu_tests": ctest,
    "compute_sanitizer_errors": {"memcheck gpu_limiter_test, racecheck gpu_dynamics_test": [int(n) for n in sanitizer]},
    "gpu_bench_errors": bench.get("errors"),
    "steps": steps,
}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
# The same files where the repository keeps measured results, named by date and device.
slug = re.sub(r"[^a-z0-9]+", "-", (summary["device"]["name"] or "unknown-device").lower()).strip("-")
stem = os.path.join(results_dir, f"{summary['date']}-gpu-run-{slug}")
try:
    shutil.copyfile(os.path.join(out, "summary.json"), stem + "-summary.json")
    if os.path.exists(os.path.join(out, "gpu_bench.json")):
        shutil.copyfile(os.path.join(out, "gpu_bench.json"), stem + "-gpu-bench.json")
    print(f"results: {stem}-*.json")
except OSError as e:
    print(f"could not copy the results to {results_dir}: {e}")
print(json.dumps({"figures": figures, "targets": targets, "gpu_tests": ctest, "steps": steps}, indent=1))
EOF
}
step summary "$RUNLOG" summarize
log "done in $(($(date +%s) - T0))s; files in $OUT:"
ls -la "$OUT" | tee -a "$RUNLOG"
