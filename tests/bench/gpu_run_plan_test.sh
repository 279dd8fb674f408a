#!/usr/bin/env bash
# bench/gpu_run.sh must run twice within a 15-minute GPU reservation: its step limits sum to at
# most 480 s, every step it runs has a limit, and every limit belongs to a step it runs.
set -euo pipefail
script=${1:?usage: gpu_run_plan_test.sh bench/gpu_run.sh}
budget_s=480

plan=$(bash "$script" --dry-run)
echo "$plan"
total=$(awk '$1 == "total" { print $2 }' <<<"$plan")
planned=$(awk 'NR > 1 && $1 != "total" { print $1 }' <<<"$plan" | sort)
called=$(grep -oE '^step [a-z_]+' "$script" | awk '{ print $2 }' | sort)

fail=0
if [[ -z $total ]] || ((total > budget_s)); then
  echo "FAIL: the steps' limits sum to ${total:-nothing} s, over the ${budget_s} s budget"
  fail=1
fi
if [[ $planned != "$called" ]]; then
  echo "FAIL: the plan and the steps the script runs differ:"
  diff <(echo "$planned") <(echo "$called") || true
  fail=1
fi
while read -r name limit; do
  if ! ((limit > 0)); then
    echo "FAIL: step $name has no positive limit"
    fail=1
  fi
done < <(awk 'NR > 1 && $1 != "total"' <<<"$plan")
((fail == 0)) && echo "OK: ${total} s of ${budget_s} s"
exit $fail
