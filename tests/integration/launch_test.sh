#!/usr/bin/env bash
# deploy/launch.sh end to end: one run to completion with 2 workers, a run stopped with SIGTERM
# mid-generation, and the default command, `tandem serve`, answering HTTP /health and gRPC
# (tandem client, and the Python example where python3-grpcio is installed) until SIGTERM.
# Afterwards no process, socket or shared-memory object of any run may remain.
# Usage: launch_test.sh REPO_DIR BIN_DIR
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

out=$("$repo/deploy/launch.sh" --bin-dir "$bin" --workers 2 --command generate \
      --model "$repo/tests/fixtures/qwen3_moe" --prompt-ids 1,2,3 --max-tokens 4 --ignore-eos --json 2>"$work/run1.err") \
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
"$repo/deploy/launch.sh" --bin-dir "$bin" --workers 2 --command generate --model "$work/demo" \
    --prompt hello --max-tokens 4000 --ignore-eos >/dev/null 2>"$work/run2.err" &
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

# The default command: tandem serve on free ports.
"$repo/deploy/launch.sh" --bin-dir "$bin" --workers 2 --model "$repo/tests/fixtures/qwen3_moe" \
    --host 127.0.0.1 --port 0 --grpc-port 0 >/dev/null 2>"$work/run3.err" &
launcher=$!
for _ in $(seq 300); do grep -q 'tandem serve: ready' "$work/run3.err" && break; sleep 0.1; done
grep -q 'tandem serve: ready' "$work/run3.err" || fail "serve never became ready: $(cat "$work/run3.err")"
http_port=$(grep -o 'listening on 127.0.0.1:[0-9]* (HTTP)' "$work/run3.err" | grep -o ':[0-9]*' | tr -d :)
grpc_port=$(grep -o '127.0.0.1:[0-9]* (gRPC)' "$work/run3.err" | grep -o ':[0-9]*' | tr -d :)
[ -n "$http_port" ] && [ -n "$grpc_port" ] || fail "no ports in: $(cat "$work/run3.err")"
exec 3<>"/dev/tcp/127.0.0.1/$http_port"
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status_line=$(head -1 <&3)
exec 3<&-
[[ "$status_line" == *" 200 "* ]] || fail "/health answered: $status_line"
out=$("$bin/tandem" client --addr "127.0.0.1:$grpc_port" --prompt-ids 1,2,3 --max-tokens 4 \
      --ignore-eos --json) || fail "tandem client failed"
echo "$out" | grep -q '"completion_tokens":4' || fail "unexpected client output: $out"
if /usr/bin/python3 -c "import grpc, google.protobuf" 2>/dev/null && command -v protoc >/dev/null; then
  /usr/bin/python3 "$repo/examples/grpc_client.py" --addr "127.0.0.1:$grpc_port" --prompt-ids 1,2,3 \
      --max-tokens 4 >"$work/py.out" 2>"$work/py.err" || fail "python example failed: $(cat "$work/py.err")"
  grep -q "4 generated" "$work/py.err" || fail "python example: $(cat "$work/py.err")"
  echo "python example: ok"
else
  echo "python example: skipped (python3-grpcio or protoc missing)"
fi
run_dir=$(grep -o 'unix:[^ ]*/worker0.sock' "$work/run3.err" | head -1 | sed 's|unix:||; s|/worker0.sock||')
kill -TERM "$launcher"
for _ in $(seq 100); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
kill -0 "$launcher" 2>/dev/null && fail "launch.sh (serve) still running 10 s after SIGTERM"
sleep 0.5
grep -q 'tandem serve: stopped' "$work/run3.err" || fail "serve did not drain: $(cat "$work/run3.err")"
pgrep -f "$run_dir" >/dev/null && fail "orphans of serve: $(pgrep -af "$run_dir")"
[ -z "$(leftover_shm "$work/run3.err")" ] || fail "shared memory left: $(leftover_shm "$work/run3.err")"
echo "serve, clients, SIGTERM: ok"
echo "3 passed, 0 failed"
