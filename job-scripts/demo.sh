#!/usr/bin/env bash
# demo.sh - build crmpi, then run a 4-rank MPI job (tests/demo/heat.c) three
# ways: uninterrupted; killed with SIGKILL in the middle (one rank, as a
# crashed node would); and restarted with the very same mpirun command. The
# restarted job resumes from its last committed checkpoint and must print
# the same final answer as the uninterrupted run.
#
#   job-scripts/demo.sh [--np N] [--steps S] [--delay US] [--kill-after SEC]
#                       [--build-dir DIR] [--no-build]
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
np=4 steps=600 delay=5000 kill_after=1 build="$top/build" do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np=$2; shift ;;
    --steps) steps=$2; shift ;;
    --delay) delay=$2; shift ;;
    --kill-after) kill_after=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$do_build" = 1 ]; then
  echo "== building crmpi in $build"
  cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target heat >/dev/null
fi
app="$build/tests/demo/heat"
[ -x "$app" ] || { echo "demo.sh: $app not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/crmpi-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mpirun=(mpirun --oversubscribe -np "$np")
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
run=("${mpirun[@]}" "$app" "$steps" 65536 "$delay")

echo "== 1. uninterrupted run (checkpoints into $work/ref)"
ref=$(CRMPI_DIR="$work/ref" "${run[@]}" 2>"$work/ref.log")
echo "   $ref"

echo "== 2. the same job, one rank SIGKILLed ${kill_after}s after its step 50"
export CRMPI_DIR="$work/ckpt"
"${run[@]}" >"$work/killed.out" 2>"$work/killed.log" &
launcher=$!
# Kill once the job has made progress (a loaded machine may take long to
# start 4 ranks): after its "step 50" line, i.e. 50 committed checkpoints.
for _ in $(seq 1200); do
  grep -q "step [1-9]" "$work/killed.log" 2>/dev/null && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.5
done
sleep "$kill_after"
victim=$(pgrep -f -n "^$app" || true)
if [ -z "$victim" ]; then
  echo "demo.sh: the job ended before it could be killed; use a larger --steps" >&2
  exit 1
fi
kill -KILL "$victim"
wait "$launcher" 2>/dev/null || true
{ grep -h "step" "$work/killed.log" || true; } | tail -n 1 | sed 's/^/   last progress: /'
echo "   killed rank pid $victim; mpirun tore the job down"
if [ -s "$work/killed.out" ]; then
  echo "demo.sh: the job finished before the kill; nothing was demonstrated" >&2
  exit 1
fi
"$build/src/tools/crmpi-ckpt" list "$CRMPI_DIR" | sed 's/^/   /'

echo "== 3. the same mpirun command again"
got=$("${run[@]}" 2>"$work/restart.log")
{ grep -h "resumed" "$work/restart.log" || true; } | sed 's/^/   /'
echo "   $got"

if ! grep -q "resumed" "$work/restart.log"; then
  echo "FAIL: the restarted job did not resume from a checkpoint" >&2
  exit 1
fi
if [ "$ref" = "$got" ]; then
  echo "== SAME ANSWER: the killed and restarted job equals the uninterrupted one"
else
  echo "FAIL: answers differ" >&2
  exit 1
fi
