#!/usr/bin/env bash
# Peak resident memory of `lathe master` on one long 96 kHz stereo FLAC (streaming + cd + hires), with
# /usr/bin/time -v, for several --max-memory bounds and track lengths, optionally beside another
# lathe binary (the alternative) on the same file in the same run; with --catalog, also a whole
# catalog folder at --jobs 2 under the same bounds. Writes one JSON file.
#   bench/memory_bound.sh OUT.json [--baseline OTHER_LATHE] [--minutes "20 120"] [--baseline-minutes 20]
#                                  [--catalog DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
baseline=""; minutes="20 120"; baseline_minutes="20"; catalog=""; build=${LATHE_BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --baseline-minutes) baseline_minutes=$2; shift 2 ;;
    --catalog) catalog=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/lathe-memory-bound.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target lathe lathe_long_track >/dev/null
results=()
measure() {  # label binary track-or-catalog bound [jobs]
  local label=$1 bin=$2 track=$3 bound=$4 jobs=${5:-}
  local dest="$work/out-$label"
  local args=(master "$track" --out "$dest" --formats streaming,cd,hires --config-dir configs --log-format json)
  [ "$bound" != default ] && args+=(--max-memory "$bound")
  [ -n "$jobs" ] && args+=(--jobs "$jobs")
  local start end rss status
  start=$(date +%s.%N)
  set +e
  /usr/bin/time -v -o "$work/time-$label" "$bin" "${args[@]}" >/dev/null 2>"$work/log-$label"
  status=$?
  set -e
  end=$(date +%s.%N)
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time-$label")
  local passes="null"
  [ -f "$dest/report.json" ] && passes=$(python3 -c "
import json,sys; r=json.load(open('$dest/report.json')); t=r['tracks'][0]
print(json.dumps({k: v['chain']['normalization'].get('full_track_passes') for k, v in t.get('outputs', {}).items()}))")
  local failed="null"
  [ -f "$dest/report.json" ] && failed=$(python3 -c "import json; print(json.load(open('$dest/report.json'))['summary']['failed'])")
  echo "$label: status $status, max RSS ${rss} KiB" >&2
  local what
  what=$(find "$track" -type f | wc -l)
  [ "$what" = 1 ] && what="\"$(ls "$track")\"" || what="\"$what tracks, --jobs ${jobs:-all}\""
  results+=("{\"run\": \"$label\", \"binary\": \"$bin\", \"track\": $what, \"max_memory\": \"$bound\", \"exit_status\": $status, \"max_rss_kib\": ${rss:-null}, \"wall_s\": $(python3 -c "print(round($end - $start, 1))"), \"full_track_passes\": $passes, \"tracks_failed\": $failed}")
  rm -rf "$dest"
}
for m in $minutes; do
  mkdir -p "$work/catalog-$m"
  track="$work/catalog-$m"
  "$build/lathe_long_track" "$track/programme-${m}min-96k.flac" "$m" 96000
  measure "${m}min-default" "$build/lathe" "$track" default
  measure "${m}min-1G" "$build/lathe" "$track" 1G
  measure "${m}min-256M" "$build/lathe" "$track" 256M
  if [ -n "$baseline" ] && [[ " $baseline_minutes " == *" $m "* ]]; then
    measure "${m}min-baseline-default" "$baseline" "$track" default
  fi
  rm -rf "$track"
done
if [ -n "$catalog" ]; then
  for bound in default 1G 256M; do measure "catalog-jobs2-$bound" "$build/lathe" "$catalog" "$bound" 2; done
fi
{
  echo "{"
  echo "  \"what\": \"peak resident memory of lathe master (streaming + cd + hires) on one 96 kHz stereo 24-bit FLAC\","
  echo "  \"machine\": \"$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -m)\","
  echo "  \"date\": \"$(date -u +%F)\","
  echo "  \"runs\": ["
  for i in "${!results[@]}"; do
    sep=","; [ "$i" -eq $((${#results[@]} - 1)) ] && sep=""
    echo "    ${results[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} >"$out"
cat "$out"
