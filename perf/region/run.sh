#!/bin/sh
# perf/region/run.sh - benchmark of the region's dirty-page trackers.
#
#   perf/region/run.sh            default run (a few minutes)
#   perf/region/run.sh --quick    smoke run for CI (well under a minute)
#   extra arguments go to bench_region (--runs N, --budget SECONDS)
#
# Builds bench_region if needed (build dir: $CRMPI_BUILD_DIR or ./build),
# prints the table, and writes perf/results/region.{txt,csv,png}
# (output dir: $CRMPI_PERF_OUT).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${CRMPI_BUILD_DIR:-$root/build}
out=${CRMPI_PERF_OUT:-$root/perf/results}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2 --target bench_region >/dev/null
mkdir -p "$out"
"$build/perf/region/bench_region" --csv "$out/region.csv" "$@" | tee "$out/region.txt"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "gnuplot not found: no plot (CSV is in $out/region.csv)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One data file per (size, tracker): written fraction in %, collect ms;
# one per size for the baselines.
awk -F, -v d="$tmp" '
  $1 == "collect" && $5 == "spread" { f = d "/" $3 "_" $2 ".dat"; print $4 * 100, $8 > f;
                    print $3, $9, $10 > (d "/base_" $3 ".dat"); sizes[$3] = 1 }
  $1 == "collect" && ($5 == "block" || $4 == 1) { print $4 * 100, $8 > (d "/" $3 "_" $2 "_block.dat") }
  END { for (s in sizes) print s > (d "/sizes") }' "$out/region.csv"
sizes=$(sort -n "$tmp/sizes" | tr '\n' ' ')
{
  echo "set terminal pngcairo size 1400,1000 font 'sans,10'"
  echo "set output '$out/region.png'"
  n=$(echo $sizes | wc -w)
  cols=2; [ "$n" -le 2 ] && cols=$n
  rows=$(( (n + cols - 1) / cols ))
  echo "set multiplot layout $rows,$cols title 'crmpi region: collect + re-arm vs baselines (median ms, log scales)'"
  echo "set logscale xy; set grid; set key left top opaque box; set xlabel 'pages written (%)'; set ylabel 'ms'"
  for s in $sizes; do
    if [ "$s" -ge 1024 ]; then label="$((s / 1024)) GiB"; else label="$s MiB"; fi
    memcpy=$(head -1 "$tmp/base_$s.dat" | cut -d' ' -f2)
    fork=$(head -1 "$tmp/base_$s.dat" | cut -d' ' -f3)
    plot="plot [0.05:200] [0.005:*] $memcpy title 'memcpy of the data' lw 2 dt 2, $fork title 'fork()' lw 2 dt 3"
    for t in uffd-async uffd-sync mprotect; do
      [ -f "$tmp/${s}_$t.dat" ] && plot="$plot, '$tmp/${s}_$t.dat' using 1:2 with linespoints lw 2 title '$t (spread)'"
      [ -f "$tmp/${s}_${t}_block.dat" ] && plot="$plot, '$tmp/${s}_${t}_block.dat' using 1:2 with linespoints lw 1 dt 4 title '$t (block)'"
    done
    echo "set title '$label of data'"
    echo "$plot"
  done
  echo "unset multiplot"
} > "$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "wrote $out/region.csv, $out/region.txt, $out/region.png"
