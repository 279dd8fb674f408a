#!/usr/bin/env bash
# The real scale-out test (issue 6): a one-node Slurm cluster on loopback, started here, runs
# deploy/slurm/lathe-array.sbatch as a 4-task array over a small synthetic catalog; then the
# shard reports are merged and every track must have been mastered exactly once, with outputs
# byte-equal to a single-machine run. A shard whose report and an output are lost is then rerun
# alone and the merge completes.
#
# usage: run_slurm_test.sh LATHE MAKE_DEMO SOURCE_DIR
# Exit 0 pass, 1 fail, 77 skipped (not root, or slurm-wlm/munge not installed; ctest shows Skipped).
# Stops only the daemons it started, by their process ids.
set -euo pipefail
lathe=$1
make_demo=$2
src=$3
export PATH="$PATH:/usr/sbin:/sbin"

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || skip "needs root to start munged, slurmctld and slurmd (CI runs as root)"
for b in munged slurmctld slurmd sbatch sinfo scancel; do
  command -v "$b" >/dev/null || skip "$b is not installed (scripts/install-deps.sh installs slurm-wlm and munge)"
done

start_s=$(date +%s)
t=$(mktemp -d /tmp/lathe-slurm.XXXXXX)
pids=()
cleanup() {
  status=$?
  set +e
  # Jobs first (their slurmstepd children belong to this cluster), then the daemons, newest first.
  [ -f "$t/slurm.conf" ] && SLURM_CONF=$t/slurm.conf timeout 10 scancel --full --quiet --user=root 2>/dev/null
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for f in "$t"/log/*.log "$t"/jobs/*.out; do
      [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
    done
  fi
  [ -n "${KEEP_SLURM_TMP:-}" ] || rm -rf "$t"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A port nothing listens on (connecting fails), away from the ephemeral range.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  fail "no free port found"
}

# ---- munge: a fresh key and our own socket, so a system munged (if any) is untouched -----------
mkdir -p "$t/munge" "$t/log" "$t/state" "$t/spool" "$t/jobs"
chmod 700 "$t/munge"
dd if=/dev/urandom of="$t/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$t/munge/munge.key"
munged --foreground --force --key-file="$t/munge/munge.key" --socket="$t/munge/munge.socket" \
  --pid-file="$t/munge/munged.pid" --log-file="$t/log/munged.log" --seed-file="$t/munge/seed" \
  >"$t/log/munged.stderr.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$t/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$t/munge/munge.socket" ] || fail "munged did not start"

# ---- slurm.conf: one node on 127.0.0.1, no cgroups, no accounting, state under $t -----------
host=$(uname -n)
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
cat >"$t/slurm.conf" <<EOF
ClusterName=lathetest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$t/munge/munge.socket
StateSaveLocation=$t/state
SlurmdSpoolDir=$t/spool
SlurmctldPidFile=$t/slurmctld.pid
SlurmdPidFile=$t/slurmd.pid
SlurmctldLogFile=$t/log/slurmctld.log
SlurmdLogFile=$t/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# The script asks for --gres=gpu:1 per task: four GPUs that exist only on paper, so the real
# script runs unchanged (lathe uses the CPU here); 4 CPUs declared so all 4 tasks run at once.
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=lathe-node NodeAddr=127.0.0.1 NodeHostname=${host} CPUs=4 Gres=gpu:4 State=UNKNOWN
PartitionName=test Nodes=lathe-node Default=YES MaxTime=INFINITE State=UP
EOF
# slurmd counts a GPU per device file; plain files stand in for /dev/nvidia0-3.
mkdir -p "$t/dev"
touch "$t"/dev/nvidia{0,1,2,3}
echo "NodeName=lathe-node Name=gpu File=$t/dev/nvidia[0-3]" >"$t/gres.conf"
export SLURM_CONF=$t/slurm.conf

# In the foreground (-D), so $! is the daemon's own pid; what they print goes to the log folder.
slurmctld -D -i -f "$SLURM_CONF" >"$t/log/slurmctld.stderr.log" 2>&1 &
pids+=($!)
slurmd -D -N lathe-node -f "$SLURM_CONF" >"$t/log/slurmd.stderr.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do
  state=$(sinfo -h -n lathe-node -o %T 2>/dev/null || true)
  [ "$state" = "idle" ] && break
  case "$state" in inval* | drain*) break ;; esac
  sleep 0.5
done
[ "$state" = "idle" ] || fail "the Slurm node did not come up (state '$state')"
echo "slurm: node idle after $(($(date +%s) - start_s)) s (slurmctld port $ctld_port, slurmd port $slurmd_port)"

# ---- the catalog: the demo generator twice (different lengths), the second copy renamed ------
# 4 albums and 2 singles of uneven length, so every one of 4 shards gets work.
"$make_demo" "$t/demo-a" 4 >/dev/null
"$make_demo" "$t/demo-b" 7 >/dev/null
mkdir -p "$t/catalog"
mv "$t/demo-a" "$t/catalog/a"
mv "$t/demo-b" "$t/catalog/b"
{
  head -n 1 "$t/catalog/a/manifest.csv"
  tail -n +2 "$t/catalog/a/manifest.csv" | sed 's|^|a/|'
  # the second copy: albums "X (Live)", the single "Signal (Live)"
  tail -n +2 "$t/catalog/b/manifest.csv" | sed -e 's|^|b/|' -e 's|,"\([^"]*\)",|,"\1 (Live)",|' -e 's|,,\([^,]*\),Signal,|,,\1,Signal (Live),|'
} >"$t/catalog/manifest.csv"
rm "$t/catalog/a/manifest.csv" "$t/catalog/b/manifest.csv"
catalog=$t/catalog/manifest.csv
n_tracks=$(($(wc -l <"$catalog") - 1))
formats=streaming,cd
n_outputs=$((n_tracks * 2))
export LATHE=$lathe LATHE_CONFIG_DIR=$src/configs
"$lathe" plan "$catalog" --shards 4 || fail "lathe plan failed"

# ---- the array -----------------------------------------------------------------------------
out=$t/out
submit() {  # $1: the array spec, $2: more --export (a rerun says the shard count)
  # Inside ctest's limit, so that a hung job still ends here, where the trap stops the daemons.
  timeout 240 sbatch --wait --array="$1" --export="ALL${2:+,$2}" --cpus-per-task=1 --time=10 --output="$t/jobs/%A_%a.out" \
    "$src/deploy/slurm/lathe-array.sbatch" "$catalog" "$out" --formats "$formats" --backend cpu
}
array_s=$(date +%s)
submit 0-3 || fail "sbatch --wait --array=0-3 failed"
echo "slurm: array 0-3 finished in $(($(date +%s) - array_s)) s"

merge_out=$("$lathe" report merge "$out") || fail "lathe report merge: $merge_out"
echo "$merge_out"
echo "$merge_out" | grep -q "4 shards: $n_tracks of $n_tracks tracks reported; $n_tracks mastered, 0 resumed, 0 failed, 0 missing" ||
  fail "merge summary"

# Exactly once: each track has one "done" line across the four tasks' logs, and each shard
# report names only its own tracks (merge refuses a track in two shards).
cat "$t"/jobs/*.out | grep -o '"event":"track","path":"[^"]*","status":"[a-z]*"' | sort >"$t/done.txt"
[ "$(wc -l <"$t/done.txt")" -eq "$n_tracks" ] || fail "$(wc -l <"$t/done.txt") track lines for $n_tracks tracks"
[ "$(sort -u "$t/done.txt" | wc -l)" -eq "$n_tracks" ] || fail "a track was mastered twice: $(uniq -d "$t/done.txt")"
grep -vq '"status":"ok"' "$t/done.txt" && fail "a track did not finish ok: $(grep -v '"status":"ok"' "$t/done.txt")"
for k in 0 1 2 3; do
  [ -f "$out/report-shard-$k-of-4.json" ] || fail "no report from shard $k"
  grep -q "lathe array task $k " "$t"/jobs/*_"$k".out || fail "task $k's log"
done
[ "$(find "$out" -path "$out/.lathe" -prune -o -type f \( -name '*.flac' -o -name '*.wav' \) -print | wc -l)" -eq "$n_outputs" ] ||
  fail "expected $n_outputs masters"

# Byte-equal to a single-machine run of the same catalog.
single=$t/single
"$lathe" master "$catalog" --out "$single" --formats "$formats" --backend cpu --jobs 2 --log-format json 2>/dev/null ||
  fail "the single-machine run failed"
diff -r --exclude=.lathe --exclude=notes --exclude='report*.json' "$single" "$out" || fail "sharded outputs differ from the single-machine run"
echo "outputs: $n_outputs masters byte-equal to the single-machine run"

# Lose shard 2's report and one of its masters: merge names shard 2; rerunning it alone redoes
# only that master (the rest is resumed) and the merge completes, outputs still byte-equal.
lost=$(grep -o '"path": "streaming/[^"]*"' "$out/report-shard-2-of-4.json" | head -n 1 | sed 's/"path": "\(.*\)"/\1/')
[ -n "$lost" ] || fail "no output in shard 2's report"
rm "$out/report-shard-2-of-4.json" "$out/$lost"
set +e
merge_out=$("$lathe" report merge "$out")
merge_status=$?
set -e
echo "$merge_out"
[ "$merge_status" -eq 2 ] || fail "merge with a lost shard exited $merge_status, not 2"
echo "$merge_out" | grep -q "missing: shard 2: no report" || fail "merge did not name shard 2"
echo "$merge_out" | grep -q "rerun shards 2 of 4" || fail "merge did not say to rerun shard 2"
submit 2 LATHE_SHARD_COUNT=4 || fail "sbatch --array=2 failed"
merge_out=$("$lathe" report merge "$out") || fail "merge after the rerun: $merge_out"
echo "$merge_out"
diff -r --exclude=.lathe --exclude=notes --exclude='report*.json' "$single" "$out" || fail "outputs differ after the rerun"
rerun_log=$(ls -t "$t"/jobs/*_2.out | head -n 1)
[ "$(grep -c '"event":"track"' "$rerun_log")" -eq 1 ] || fail "the rerun mastered more than the lost track"

echo "PASS: $n_tracks tracks, 4 shards, each track mastered once, outputs byte-equal; rerun of one shard" \
  "completed the merge; $(($(date +%s) - start_s)) s in all"
