#!/usr/bin/env bash
# Run every benchmark of crmpi, one after the other; each prints its table
# (figures beside their baselines, measured in the same run, as ratios) and
# writes CSV + PNG into perf/results/.
#   perf/run-all.sh [--quick]      --quick: short smoke runs of each
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
status=0
for bench in region heap store exec mpi fast restart transparent rollback; do
  echo "=================== perf/$bench ==================="
  "$here/$bench/run.sh" "$@" || { echo "perf/$bench failed" >&2; status=1; }
done
exit $status
