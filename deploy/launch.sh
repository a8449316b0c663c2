#!/usr/bin/env bash
# Starts Tandem on this machine: one tandem-worker per NUMA node (bound to that node's cores and
# memory), waits until every worker reports SERVING, then runs the coordinator connected to them:
# by default `tandem serve` (the OpenAI HTTP and gRPC APIs), or any other coordinator command.
# Ctrl-C / SIGTERM stops everything: no orphan process, no socket, no shared memory left behind
# (rings are unlinked as soon as a worker attaches).
#
#   deploy/launch.sh --model DIR [--workers N|auto] [--command serve|generate|logits|...] \
#       [--bin-dir build/bin] [other coordinator flags, e.g. --port 8000 --grpc-port 50051,
#       or for generate: --prompt "Hi" --max-tokens 32]
#
# --workers auto (default): one worker per NUMA node. N: N workers; on a machine with another
# number of nodes the CPUs are split into N groups (how a multi-socket box is rehearsed on one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin_dir="$here/../build/bin"
workers=auto
command=serve
model=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --command) command="$2"; shift 2 ;;
    --model) model="$2"; args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$model" ] || { echo "launch.sh: --model DIR is required" >&2; exit 2; }
tandem="$bin_dir/tandem"
worker_bin="$bin_dir/tandem-worker"
for b in "$tandem" "$worker_bin"; do
  [ -x "$b" ] || { echo "launch.sh: $b not found (build first: bash scripts/build.sh)" >&2; exit 2; }
done

# One line per worker: "node N" or "cpus LIST" (hwloc, through the tandem binary).
if [ "$workers" = auto ]; then
  mapfile -t plan < <("$tandem" topology --plan auto)
else
  mapfile -t plan < <("$tandem" topology --plan "$workers")
fi
[ "${#plan[@]}" -gt 0 ] || { echo "launch.sh: could not plan the workers" >&2; exit 1; }

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tandem-launch.XXXXXX")
pids=()
coordinator=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$coordinator" ] && kill -TERM "$coordinator" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $coordinator; do wait "$p" 2>/dev/null || true; done
  rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

addrs=()
for i in "${!plan[@]}"; do
  read -r kind value <<<"${plan[$i]}"
  addr="unix:$run_dir/worker$i.sock"
  if [ "$kind" = node ]; then bind=(--numa-node "$value"); else bind=(--cpus "$value"); fi
  "$worker_bin" --listen "$addr" --id "$i" "${bind[@]}" &
  pids+=($!)
  addrs+=("$addr")
  echo "launch.sh: worker $i (pid $!) on $kind $value at $addr" >&2
done
for a in "${addrs[@]}"; do
  "$tandem" probe --addr "$a" --timeout 60 || { echo "launch.sh: worker at $a never became healthy" >&2; exit 1; }
done
joined=$(IFS=,; echo "${addrs[*]}")
"$tandem" "$command" --worker-addrs "$joined" "${args[@]}" &
coordinator=$!
set +e
wait "$coordinator"
status=$?
set -e
coordinator=""
exit "$status"
