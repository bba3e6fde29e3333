#!/bin/sh
# perf/transparent/run.sh [--quick] - what transparent mode costs.
#   alloc:   interposed malloc/free (persistent heap) vs glibc (the same
#            binary with CRMPI_INTERPOSE=0) vs crmalloc called directly
#   globals: incremental checkpoint time with a 64 MiB .bss, 1% of its pages
#            written per step, with the globals saved (=1) vs not (=0)
# Medians of RUNS runs (default 5, --quick 1), interleaved; table on stdout
# with ratios to the baseline of the same run; CSV, table and PNG in
# perf/results/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$top/build}
runs=${RUNS:-5}
if [ "${1:-}" = "--quick" ]; then runs=1; fi
out=$top/perf/results
mkdir -p "$out"
[ -f "$build/CMakeCache.txt" ] || cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target bench_interpose >/dev/null
bin=$build/perf/transparent/bench_interpose
raw=$(mktemp)
scratch=$(mktemp -d)
trap 'rm -rf "$raw" "$scratch"' EXIT
for r in $(seq "$runs"); do
  for on in 1 0; do
    rm -rf "$scratch/ck"
    CRMPI_DIR=$scratch/ck CRMPI_INTERPOSE=$on "$bin" alloc >>"$raw"
    rm -rf "$scratch/ck"
    CRMPI_DIR=$scratch/ck CRMPI_INTERPOSE=$on CRMPI_FULL_EVERY=1000 "$bin" globals >>"$raw"
  done
  echo "run $r/$runs done" >&2
done
python3 - "$raw" "$out" <<'PY' | tee "$out/transparent.txt"
import csv, statistics, sys, shutil, subprocess
raw, out = sys.argv[1], sys.argv[2]
vals = {}
for line in open(raw):
    fig, mode, v = line.strip().split(',')
    vals.setdefault((fig, mode), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
rows = [("malloc/free Mops/s", "alloc_mops", "malloc-on", "malloc-off"),
        ("crmalloc direct Mops/s", "alloc_mops", "crmalloc-direct", "malloc-off"),
        ("incr. checkpoint ms (64 MiB bss, 1%)", "ckpt_ms_64MiB_bss", "globals-on", "globals-off")]
print("%-40s %12s %12s %8s" % ("figure", "transparent", "baseline", "ratio"))
with open(out + "/transparent.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["figure", "value", "baseline", "ratio"])
    for name, fig, a, b in rows:
        x, y = med.get((fig, a)), med.get((fig, b))
        if x is None or y is None:
            continue
        ratio = x / y if y else float('nan')
        print("%-40s %12.3f %12.3f %8.2f" % (name, x, y, ratio))
        w.writerow([name, x, y, ratio])
print("baselines: glibc malloc (CRMPI_INTERPOSE=0, same binary); checkpoint without globals")
if shutil.which("gnuplot"):
    subprocess.run(["gnuplot", "-e",
        "set terminal pngcairo size 800,400; set output '%s/transparent.png';"
        "set datafile separator ','; set style data histograms; set style fill solid;"
        "set key autotitle columnhead; set ylabel 'ratio to baseline';"
        "plot '%s/transparent.csv' using 4:xtic(1) title 'transparent / baseline'"
        % (out, out)], check=False)
PY
