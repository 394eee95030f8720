#!/bin/sh
# Issue 33's loop: create/start/delete --force with --debug --log F --log-format json, a fresh
# --root each time, N times (default 400 = 8 x 50); counts failures and jobs left. Run in a lane:
#   python3 tools/devcluster.py exec --lane slurm-24.11 -- sh bench/debug_log_loop.sh BUNDLE [N]
set -u
bundle=$1 n=${2:-400} fail=0 i=0
base=$(mktemp -d /tmp/scrun-loop-XXXXXX)
while [ $i -lt $n ]; do
    i=$((i + 1)); r=$base/r$i; mkdir -p "$r"
    g="--root $r --debug --log $r/d.json --log-format json"
    if ! scrun $g create --bundle "$bundle" --pid-file "$r/p" c$i </dev/null >"$r/out" 2>"$r/err" \
        || ! scrun $g start c$i 2>>"$r/err" || ! scrun $g delete --force c$i 2>>"$r/err"; then
        fail=$((fail + 1)); echo "run $i failed: $(tail -1 "$r/err")"
    fi
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$r/d.json" 2>/dev/null \
        || { fail=$((fail + 1)); echo "run $i: a log line is not whole JSON"; }
done
# A released job may still be completing in slurmctld for a moment: wait up to 15 s for it.
t=0
while [ $t -lt 15 ] && squeue -h -o %j | grep -q '^scrun:c'; do sleep 1; t=$((t + 1)); done
left=$(squeue -h -o %j | grep -c '^scrun:c' || true)
echo "runs: $n, failures: $fail, jobs left: $left"
rm -rf "$base"
