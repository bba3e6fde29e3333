#!/bin/sh
# perf/exec/run.sh - cost of checkpoints inside a recursive computation.
#
#   perf/exec/run.sh            default run (a few minutes): 8192 and 1M ints
#                               with 1-4 checkpoints per subproblem (3 runs
#                               each), 16M ints with 1 and 2 (one run each)
#   perf/exec/run.sh --quick    smoke run for CI (8192 and 1M ints, one run each)
#
# For each array size and 1..4 checkpoints per subproblem (subproblems above
# n/128 elements), bench_msort sorts with checkpoints and, in the same
# process, without (the baseline); medians of RUNS runs. Reports total time,
# time per checkpoint (extra time / number of checkpoints), bytes written per
# checkpoint and the slowdown ratio. Builds bench_msort if needed (build dir:
# $CRMPI_BUILD_DIR or ./build); writes perf/results/exec.{txt,csv,png}
# (output dir: $CRMPI_PERF_OUT). Checkpoints go to a fresh directory under
# the build directory (same filesystem as the build).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${CRMPI_BUILD_DIR:-$root/build}
out=${CRMPI_PERF_OUT:-$root/perf/results}
sizes="8192 1048576 16777216"
runs=3
if [ "${1:-}" = "--quick" ]; then
  sizes="8192 1048576"
  runs=1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2 --target bench_msort >/dev/null
mkdir -p "$out"
ckdir="$build/perf/exec/ckpt"
csv="$out/exec.csv"
echo "n,ckpts_per_sub,baseline_s,total_s,checkpoints,s_per_ckpt,bytes_per_ckpt,write_s_per_ckpt,raw_s" > "$csv"
for n in $sizes; do
  ks="1 2 3 4"
  r=$runs
  # 16M ints: about 30 s per sort with checkpoints; keep the run modest
  if [ "$n" -ge 16777216 ]; then ks="1 2"; r=1; fi
  for k in $ks; do
    rm -rf "$ckdir"
    CRMPI_DIR="$ckdir" "$build/perf/exec/bench_msort" "$n" "$k" "$r" >> "$csv"
  done
done
rm -rf "$ckdir"

{
  echo "mergesort with checkpoints in every subproblem > n/128 (median of $runs runs, 1 for 16M; baseline = same sort, no checkpoint, same process)"
  printf "%10s %6s %11s %11s %9s %6s %9s %9s %10s %9s %8s\n" n ck/sub baseline_s total_s ratio ckpts ms/ckpt write_ms KiB/ckpt raw_ms wr/raw
  awk -F, 'NR > 1 { printf "%10d %6d %11.4f %11.4f %9.1f %6d %9.3f %9.3f %10.1f %9.3f %8.2f\n",
                    $1, $2, $3, $4, ($3 > 0 ? $4 / $3 : 0), $5, $6 * 1000, $8 * 1000, $7 / 1024,
                    $9 * 1000, ($9 > 0 ? $8 / $9 : 0) }' "$csv"
  echo "ms/ckpt = (total - baseline) / checkpoints: the whole cost to the computation"
  echo "write_ms = collector per checkpoint (collect dirty extents + store epoch write + commit)"
  echo "raw_ms = baseline: write KiB/ckpt bytes to a new file + fsync + rename + fsync dir, same filesystem"
} | tee "$out/exec.txt"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "gnuplot not found: no plot (CSV is in $csv)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -F, -v d="$tmp" 'NR > 1 { print $2, $6 * 1000, $7 / 1024, ($3 > 0 ? $4 / $3 : 0) > (d "/" $1 ".dat"); s[$1] = 1 }
  END { for (x in s) print x > (d "/sizes") }' "$csv"
sizes=$(sort -n "$tmp/sizes" | tr '\n' ' ')
{
  echo "set terminal pngcairo size 1500,500 font 'sans,10'"
  echo "set output '$out/exec.png'"
  echo "set multiplot layout 1,3 title 'crmpi: checkpoints inside a recursive mergesort (median of $runs runs)'"
  echo "set grid; set key left top opaque box; set xlabel 'checkpoints per subproblem'; set xtics 1"
  for panel in "2:ms per checkpoint:ms" "3:KiB written per checkpoint:KiB" "4:total time / baseline (no checkpoints):ratio"; do
    col=${panel%%:*}; rest=${panel#*:}; title=${rest%%:*}; ylabel=${rest#*:}
    echo "set title '$title'; set ylabel '$ylabel'; set logscale y"
    plot="plot"
    sep=""
    for s in $sizes; do
      plot="$plot$sep '$tmp/$s.dat' using 1:$col with linespoints lw 2 title 'n = $s'"
      sep=","
    done
    echo "$plot"
  done
  echo "unset multiplot"
} > "$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "wrote $csv, $out/exec.txt, $out/exec.png"
