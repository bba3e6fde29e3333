#!/usr/bin/env bash
# Container write/read bandwidth against raw write+fsync / read of the same
# bytes on the same filesystem, measured in the same run, at 1, 2 and 4 ranks.
#
#   perf/store/run.sh [--quick | --full]     (BUILD=dir to use another build)
#
#   --quick   64 MiB per rank at 1 and 2 ranks, 3 repetitions (CI smoke test)
#   default   64 MiB (3 reps), 256 MiB (3 reps), 2 GiB (2 reps: each order
#             of raw/container once) per rank at 1, 2, 4 ranks: ~8 minutes
#             on this (shared, heavily loaded) machine
#   --full    64 MiB, 256 MiB, 1 GiB, 2 GiB per rank, 5/5/3/3 reps
#
# Files go to $CRMPI_BENCH_DIR (default: build/bench-store, i.e. the
# filesystem of the source tree) and are removed afterwards. Page cache is
# dropped between writing and reading (echo 3 > /proc/sys/vm/drop_caches as
# root, plus posix_fadvise DONTNEED on every file; the CSV says which).
# Both sides free blocks as an application would: raw overwrites its file
# (O_TRUNC), the container deletes the previous epoch after each commit
# (CRMPI_KEEP=1). Set BENCH_NOFREE=1 to compare without any freeing.
# Raw is one file per rank by default; BENCH_RAW_SHARED=1 makes it one
# shared file (each rank pwrite()s its part), as the container writes.
# Output: a table with ratios, perf/results/store.csv and store.png.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=$ROOT/perf/results
MODE=${1:-default}
case "$MODE" in
  --quick) SIZES="64M:3"; RANKS="1 2" ;;
  default) SIZES="64M:3 256M:3 2G:2"; RANKS="1 2 4" ;;
  --full)  SIZES="64M:5 256M:5 1G:3 2G:3"; RANKS="1 2 4" ;;
  *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;;
esac

CSV=$OUT/store.csv
mkdir -p "$OUT"
# PLOT_ONLY=1 redraws the PNG from an existing CSV.
if [ -z "${PLOT_ONLY:-}" ]; then
if [ ! -x "$BUILD/perf/store/bench_store" ]; then
  cmake -S "$ROOT" -B "$BUILD" >/dev/null
  cmake --build "$BUILD" -j2 --target bench_store >/dev/null
fi
WORK=${CRMPI_BENCH_DIR:-$BUILD/bench-store}
mkdir -p "$WORK" "$OUT"
trap 'rm -rf "$WORK"' EXIT

# Worst case on disk: raw files + one kept epoch + the one being written.
max_gib=0
for s in $SIZES; do
  sz=${s%%:*}
  case "$sz" in *G) g=${sz%G} ;; *M) g=1 ;; esac
  [ "$g" -gt "$max_gib" ] && max_gib=$g
done
need_gib=$(( max_gib * 4 * 3 + 1 ))
avail_gib=$(df -BG --output=avail "$WORK" | tail -1 | tr -dc 0-9)
if [ "$avail_gib" -lt "$need_gib" ]; then
  echo "run.sh: need ${need_gib} GiB free in $WORK, have ${avail_gib} GiB" >&2
  exit 1
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(df -T "$WORK" | awk 'NR==2{print $2}') on $(df "$WORK" | awk 'NR==2{print $1}'); raw: $([ -n "${BENCH_RAW_SHARED:-}" ] && echo "one shared file" || echo "one file per rank"); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nranks,bytes_per_rank,raw_write_MBps,ckpt_write_MBps,raw_read_MBps,ckpt_read_MBps,cache_drop,write_ratio,read_ratio" > "$CSV"
printf "%-6s %-9s %11s %11s %6s %11s %11s %6s  %s\n" ranks per-rank "raw wr MB/s" "ckpt wr" ratio \
       "raw rd MB/s" "ckpt rd" ratio cache
export OMPI_MCA_op='^avx'
if [ -n "${BENCH_NOFREE:-}" ]; then export CRMPI_KEEP=1000; else export CRMPI_KEEP=1; fi
for s in $SIZES; do
  sz=${s%%:*} reps=${s##*:}
  for np in $RANKS; do
    rm -rf "${WORK:?}"/*
    line=$(mpirun --oversubscribe --allow-run-as-root -np "$np" \
             "$BUILD/perf/store/bench_store" "$WORK" "$sz" "$reps")
    IFS=, read -r n b rw cw rr cr drop <<<"$line"
    wr=$(awk -v a="$cw" -v b="$rw" 'BEGIN{printf "%.2f", a/b}')
    rd=$(awk -v a="$cr" -v b="$rr" 'BEGIN{printf "%.2f", a/b}')
    echo "$line,$wr,$rd" >> "$CSV"
    printf "%-6s %-9s %11s %11s %6s %11s %11s %6s  %s\n" "$n" "$sz" "$rw" "$cw" "$wr" \
           "$rr" "$cr" "$rd" "$drop"
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CSV: $CSV"
fi

plot() {
  # rows sorted by rank count so each series is one connected line
  local sorted=$OUT/.store.sorted.csv
  { head -1 "$CSV"; tail -n +2 "$CSV" | sort -t, -k1,1n -k2,2n; } > "$sorted"
  gnuplot <<GP
set terminal pngcairo size 1200,480 font ",10"
set output "$OUT/store.png"
set datafile separator ","
set key top left
set logscale x 2
set xrange [45:3000]
set xlabel "bytes per rank (MiB)"
set ylabel "aggregate MB/s"
set grid
set multiplot layout 1,2 title "crmpi container vs raw I/O, same filesystem, same run"
set title "write (+fsync)"
plot for [np in "1 2 4"] "$sorted" using (\$1==np+0 ? \$2/1048576 : 1/0):3 with linespoints dt 2 title "raw, ".np." rank(s)", \
     for [np in "1 2 4"] "$sorted" using (\$1==np+0 ? \$2/1048576 : 1/0):4 with linespoints lw 2 title "container, ".np." rank(s)"
set title "read (page cache dropped)"
plot for [np in "1 2 4"] "$sorted" using (\$1==np+0 ? \$2/1048576 : 1/0):5 with linespoints dt 2 title "raw, ".np." rank(s)", \
     for [np in "1 2 4"] "$sorted" using (\$1==np+0 ? \$2/1048576 : 1/0):6 with linespoints lw 2 title "container, ".np." rank(s)"
unset multiplot
GP
  rm -f "$sorted"
  echo "plot: $OUT/store.png"
}
command -v gnuplot >/dev/null && plot
