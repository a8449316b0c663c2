#!/usr/bin/env bash
# deploy/launch.sh end to end: one run to completion with 2 workers, then a run stopped with
# SIGTERM mid-generation. Afterwards no process, socket or shared-memory object of either run
# may remain. Usage: launch_test.sh REPO_DIR BIN_DIR
set -uo pipefail
repo=$1
bin=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Shared-memory rings of the coordinator whose pid the workers logged ("coordinator 'pid-N'").
leftover_shm() {
  local pid
  pid=$(grep -o "coordinator 'pid-[0-9]*'" "$1" | head -1 | grep -o '[0-9]*')
  [ -n "$pid" ] || { echo "no coordinator pid in $1"; return; }
  ls /dev/shm 2>/dev/null | grep "^tandem-$pid-" || true
}

out=$("$repo/deploy/launch.sh" --bin-dir "$bin" --workers 2 --model "$repo/tests/fixtures/qwen3_moe" \
      --prompt-ids 1,2,3 --max-tokens 4 --ignore-eos --json 2>"$work/run1.err") \
  || fail "launch.sh exited non-zero: $(cat "$work/run1.err")"
echo "$out" | grep -q '"finish_reason":"length"' || fail "unexpected output: $out"
run_dir=$(grep -o 'unix:[^ ]*/worker0.sock' "$work/run1.err" | head -1 | sed 's|unix:||; s|/worker0.sock||')
[ -n "$run_dir" ] || fail "no worker address in: $(cat "$work/run1.err")"
[ ! -e "$run_dir" ] || fail "run directory $run_dir left behind"
pgrep -f "$run_dir" >/dev/null && fail "processes of $run_dir still running"
[ -z "$(leftover_shm "$work/run1.err")" ] || fail "shared memory left: $(leftover_shm "$work/run1.err")"
echo "run to completion: ok"

# A long generation on the (larger) demo model, stopped with SIGTERM once it is under way.
"$bin/tandem" demo --dir "$work/demo" --workers 0 --max-tokens 1 >/dev/null || fail "demo failed"
"$repo/deploy/launch.sh" --bin-dir "$bin" --workers 2 --model "$work/demo" --prompt hello \
    --max-tokens 4000 --ignore-eos >/dev/null 2>"$work/run2.err" &
launcher=$!
for _ in $(seq 100); do
  grep -q 'worker 1 (pid' "$work/run2.err" && pgrep -f "$bin/tandem generate" >/dev/null && break
  sleep 0.1
done
sleep 1
pgrep -f "$bin/tandem generate" >/dev/null || fail "the coordinator never started: $(cat "$work/run2.err")"
run_dir=$(grep -o 'unix:[^ ]*/worker0.sock' "$work/run2.err" | head -1 | sed 's|unix:||; s|/worker0.sock||')
kill -TERM "$launcher"
for _ in $(seq 100); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
kill -0 "$launcher" 2>/dev/null && fail "launch.sh still running 10 s after SIGTERM"
sleep 0.5
pgrep -f "$run_dir" >/dev/null && fail "orphan workers: $(pgrep -af "$run_dir")"
pgrep -f "$bin/tandem generate --worker-addrs unix:$run_dir" >/dev/null && fail "orphan coordinator"
[ ! -e "$run_dir" ] || fail "run directory $run_dir left behind"
[ -z "$(leftover_shm "$work/run2.err")" ] || fail "shared memory left: $(leftover_shm "$work/run2.err")"
echo "SIGTERM mid-generation: ok"
echo "2 passed, 0 failed"
