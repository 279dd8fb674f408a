#!/usr/bin/env bash
# Two lathe binaries side by side on one catalog in one run (streaming + cd by default): wall
# time and x realtime of each, then the candidate again under a small --max-memory, and every
# master of the three runs compared byte for byte. Writes one JSON file. --repeat N runs the
# two builds N times each, alternating, and compares their median wall times (a shared machine's
# noise is of the order of the differences measured).
#   bench/compare_builds.sh OUT.json BASELINE_LATHE CANDIDATE_LATHE CATALOG [--formats F] [--jobs N] [--bound 256M]
#                          [--repeat N] [--base-configs DIR]  (the baseline's own configs/, when the profiles' schema changed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 base=$2 cand=$3 catalog=$4; shift 4
formats=streaming,cd; jobs=$(nproc); bound=256M; repeat=1; base_configs=configs
while [ $# -gt 0 ]; do
  case $1 in
    --formats) formats=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --bound) bound=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --base-configs) base_configs=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/lathe-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
run() {  # label binary configs [extra args]
  local label=$1 bin=$2 cfg=$3; shift 3
  /usr/bin/time -v -o "$work/time-$label" "$bin" master "$catalog" --out "$work/$label" --formats "$formats" \
    --jobs "$jobs" --config-dir "$cfg" --log-format json "$@" >/dev/null 2>"$work/log-$label" || true
  echo "$label done" >&2
}
run baseline "$base" "$base_configs"
run candidate "$cand" configs
for k in $(seq 2 "$repeat"); do
  run "baseline-$k" "$base" "$base_configs"
  run "candidate-$k" "$cand" configs
done
run candidate_bounded "$cand" configs --max-memory "$bound"
python3 - "$work" "$out" "$base" "$cand" "$catalog" "$formats" "$jobs" "$bound" "$repeat" <<'PY'
import hashlib, json, os, statistics, subprocess, sys
work, out, base, cand, catalog, formats, jobs, bound, repeat = sys.argv[1:]
repeat = int(repeat)
def masters(d):
    m = {}
    for root, _, files in os.walk(os.path.join(work, d)):
        for f in files:
            if f.endswith((".flac", ".wav")) and not f.startswith("."):
                p = os.path.join(root, f)
                m[os.path.relpath(p, os.path.join(work, d))] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return m
def rss(label):
    for line in open(os.path.join(work, "time-" + label)):
        if "Maximum resident set size" in line:
            return int(line.split(":")[1])
runs = {}
for label, binary in (("baseline", base), ("candidate", cand), ("candidate_bounded", cand)):
    s = json.load(open(os.path.join(work, label, "report.json")))["summary"]
    runs[label] = {"binary": binary, "wall_s": s["wall_s"], "x_realtime": s["x_realtime"],
                   "audio_hours": s["audio_hours"], "succeeded": s["succeeded"], "failed": s["failed"],
                   "max_rss_kib": rss(label)}
runs["candidate_bounded"]["max_memory"] = bound
for label in ("baseline", "candidate"):
    walls = [runs[label]["wall_s"]] + [json.load(open(os.path.join(work, f"{label}-{k}", "report.json")))["summary"]["wall_s"]
                                       for k in range(2, repeat + 1)]
    runs[label]["wall_s_runs"] = walls
    runs[label]["wall_s_median"] = statistics.median(walls)
m = {k: masters(k) for k in runs}
result = {
    "what": "lathe master, two builds side by side on one catalog, then the candidate under a small --max-memory",
    "machine": f"{os.cpu_count()} cores, " + subprocess.run(["sh", "-c", "free -g | awk '/Mem:/ {print $2}'"],
                                                          capture_output=True, text=True).stdout.strip() + " GiB RAM",
    "catalog": catalog, "formats": formats, "jobs": int(jobs), "runs": runs,
    "masters": len(m["baseline"]),
    "candidate_equals_baseline": m["candidate"] == m["baseline"],
    "bounded_equals_default": m["candidate_bounded"] == m["candidate"],
    "repeat": repeat,
    "speedup_vs_baseline": round(runs["baseline"]["wall_s_median"] / runs["candidate"]["wall_s_median"], 3),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
