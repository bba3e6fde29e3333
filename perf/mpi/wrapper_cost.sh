#!/usr/bin/env bash
# perf/mpi/wrapper_cost.sh - what libcrmpi's wrappers add to a 1-byte
# message, in instructions (callgrind), which machine load cannot disturb.
#
# Runs bench_mpi "burst" (rank 1 sends bursts of 1-byte messages, rank 0
# receives them after a barrier, so receives never poll) under callgrind,
# built plain (Open MPI alone) and with libcrmpi (wrappers active,
# checkpoints possible). Reports instructions per MPI_Send and per MPI_Recv
# call, inclusive of everything below them, for both, and the ratio.
# Writes perf/results/mpi_wrapper_cost.txt. Needs valgrind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${CRMPI_BUILD:-$root/build}
command -v valgrind >/dev/null || { echo "wrapper_cost.sh: valgrind is not installed" >&2; exit 1; }
[ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j2 --target bench_mpi_plain bench_mpi_crmpi >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CRMPI_DIR=$tmp/ckpt CRMPI_LOG=none
mpi=(mpiexec --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

for v in plain crmpi; do
  rm -rf "$CRMPI_DIR"
  setarch "$(uname -m)" -R "${mpi[@]}" -np 2 valgrind --tool=callgrind \
    --callgrind-out-file="$tmp/$v.%p" "$build/perf/mpi/bench_mpi_$v" burst >"$tmp/calls" 2>"$tmp/$v.log"
done
python3 - "$tmp" "$root/perf/results/mpi_wrapper_cost.txt" "$root" <<'PY'
# Instructions per call, from the annotated source of the benchmark: the
# call sites "=> fn (Nx)" carry the inclusive cost and count of the calls
# the application made (for crmpi the wrapper MPI_Send, which includes
# PMPI_Send - the larger of the two call sites; for plain Open MPI's
# PMPI_Send, the function MPI_Send is an alias of).
import glob, os, re, subprocess, sys, datetime
tmp, dst, src = sys.argv[1], sys.argv[2], sys.argv[3]

def per_call(path, fn):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                          "--include=" + src, path], capture_output=True, text=True).stdout.splitlines()
    best = None
    for l in out:
        m = re.match(r"\s*([\d,]+) .*=> \S*[:?]P?%s \(([\d,]+)x\)" % fn, l)
        if m:
            x = int(m.group(1).replace(",", "")) / int(m.group(2).replace(",", ""))
            best = x if best is None else max(best, x)
    return best

res = {}
for v in ("plain", "crmpi"):
    for f in glob.glob(os.path.join(tmp, v + ".[0-9]*")):
        for fn in ("MPI_Send", "MPI_Recv"):
            x = per_call(f, fn)
            if x:
                res[(v, fn)] = x
lines = ["# crmpi wrapper cost: instructions per call (callgrind, inclusive of MPI),",
         "# 1-byte messages received without polling (bench_mpi burst, 2 ranks)",
         "# %s, %d cores, %s" % (datetime.date.today(), os.cpu_count(), os.uname().release),
         "%-10s %10s %10s %8s" % ("call", "plain", "crmpi", "ratio")]
tot = {"plain": 0, "crmpi": 0}
for fn in ("MPI_Send", "MPI_Recv"):
    p, c = res.get(("plain", fn)), res.get(("crmpi", fn))
    if p is None or c is None:
        sys.exit("wrapper_cost.sh: no %s calls found in the callgrind output" % fn)
    tot["plain"] += p; tot["crmpi"] += c
    lines.append("%-10s %10.0f %10.0f %8.3f" % (fn, p, c, c / p))
lines.append("%-10s %10.0f %10.0f %8.3f" % ("message", tot["plain"], tot["crmpi"],
                                              tot["crmpi"] / tot["plain"]))
open(dst, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
