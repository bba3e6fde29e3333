#!/usr/bin/env bash
# perf/restart/run.sh - restart time, eager and lazy restore, against raw
# read() of the same bytes, page cache dropped and warm.
#
#   perf/restart/run.sh [--quick]     (BUILD=dir to use another build)
#
#   default  1 process: 64M 256M 1G 4G; 4 processes: 64M 256M 1G each;
#            3 repetitions (medians)
#   --quick  64M and 256M at 1 and 4 processes, 1 repetition (smoke test)
#
# For each size a program (bench_restart) fills that much crmalloc'ed heap,
# checkpoints once and leaves as if killed; then it is started again with
# CRMPI_RESTORE=eager or lazy and reports the seconds from just before exec
# until the application runs again (resume_s), until it has read back and
# verified every word (full_s), and the engine's own restore time before
# resuming (restore_s). "4 processes" are 4 independent libcr programs
# restarting at the same moment (each its own directory), the I/O load of 4
# ranks on one node; their slowest is reported. Baselines in the same run:
# raw_s = read() of the same epoch files in 4 MiB pieces into a reused warm
# buffer (the filesystem's bandwidth), rawmem_s = the same into fresh memory
# of the file's size (what any restore into new memory pays; first touch of
# memory is very expensive on this virtual machine).
# cache=drop: echo 3 > /proc/sys/vm/drop_caches before every run (root);
# cache=warm: the files are in the page cache.
# Output: table, perf/results/restart.{csv,txt,png}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${CRMPI_PERF_OUT:-$ROOT/perf/results}
MODES=${MODES:-"eager lazy"}
case "${1:-default}" in
  --quick) d1="64M 256M"; d4="64M"; dr=1 ;;
  default) d1="64M 256M 1G 4G"; d4="64M 256M 1G"; dr=3 ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
# SIZES1 / SIZES4 / REPS override the lists (e.g. a shorter run on a busy machine)
SIZES1=${SIZES1:-$d1}; SIZES4=${SIZES4:-$d4}; REPS=${REPS:-$dr}
cmake --build "$BUILD" -j2 --target bench_restart >/dev/null
B=$BUILD/perf/restart/bench_restart
WORK=${CRMPI_BENCH_DIR:-$BUILD/bench-restart}
mkdir -p "$OUT" "$WORK"
trap 'rm -rf "$WORK"' EXIT
CSV=$OUT/restart.csv

bytes() { numfmt --from=iec "$1"; }
drop() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# max over the columns of several "a,b,c" lines, column by column
colmax() { awk -F, '{for(i=1;i<=NF;i++) if($i>m[i]) m[i]=$i; n=NF} END {s=""; for(i=1;i<=n;i++) s=s (i>1?",":"") m[i]; print s}'; }

# run_all NP CMD...: start NP copies (copy p gets DIR=$WORK/p), wait, colmax
run_all() {
  local np=$1; shift
  local pids=() p
  for ((p = 0; p < np; p++)); do
    CRMPI_DIR=$WORK/$p "$@" > "$WORK/out.$p" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  cat "$WORK"/out.* | colmax
  rm -f "$WORK"/out.*
}

TXT=$OUT/restart.txt
exec > >(tee "$TXT")
echo "# perf/restart/run.sh ${1:-default} on $(date -u +%F): $(uname -r), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(df -hT "$WORK" | awk 'NR==2{print $2" on "$1}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians of $REPS run(s); files in $WORK"
echo "nranks,bytes_per_rank,mode,cache,resume_s,full_s,restore_s,raw_s,rawmem_s,eager_vs_raw,eager_vs_rawmem" > "$CSV"
printf "%-3s %-5s %-6s %-5s %9s %9s %9s %9s %9s %8s %8s\n" np size mode cache resume_s full_s \
  restore_s raw_s rawmem_s full/raw full/rawmem
for np in 1 4; do
  if [ "$np" = 1 ]; then sizes=$SIZES1; else sizes=$SIZES4; fi
  for sz in $sizes; do
    n=$(bytes "$sz")
    for ((p = 0; p < np; p++)); do rm -rf "${WORK:?}/$p"; done
    run_all "$np" env CRMPI_DISABLE=0 "$B" ckpt "$n" >/dev/null
    for cache in drop warm; do
      for mode in $MODES; do
        : > "$WORK/r"; : > "$WORK/b"
        for ((rep = 0; rep < REPS; rep++)); do
          if [ "$cache" = drop ]; then drop; else run_all "$np" sh -c 'cat "$CRMPI_DIR"/*.h5 > /dev/null; echo 0' >/dev/null; fi
          run_all "$np" env CRMPI_RESTORE=$mode BENCH_T0_NS="$(date +%s%N)" "$B" resume "$n" >> "$WORK/r"
          # baselines, same run, same files
          [ "$cache" = drop ] && drop
          raw=$(run_all "$np" sh -c 'CRMPI_DISABLE=1 '"$B"' raw "$(ls "$CRMPI_DIR"/epoch-*.h5 | tail -1)"' | cut -d, -f1)
          [ "$cache" = drop ] && drop
          rawmem=$(run_all "$np" sh -c 'CRMPI_DISABLE=1 '"$B"' rawmem "$(ls "$CRMPI_DIR"/epoch-*.h5 | tail -1)"' | cut -d, -f1)
          echo "$raw,$rawmem" >> "$WORK/b"
        done
        res=$(cut -d, -f1 "$WORK/r" | median); full=$(cut -d, -f2 "$WORK/r" | median)
        rst=$(cut -d, -f3 "$WORK/r" | median)
        raw=$(cut -d, -f1 "$WORK/b" | median); rawmem=$(cut -d, -f2 "$WORK/b" | median)
        r1=$(awk -v a="$raw" -v b="$full" 'BEGIN{printf "%.2f", a/b}')
        r2=$(awk -v a="$rawmem" -v b="$full" 'BEGIN{printf "%.2f", a/b}')
        echo "$np,$n,$mode,$cache,$res,$full,$rst,$raw,$rawmem,$r1,$r2" >> "$CSV"
        printf "%-3s %-5s %-6s %-5s %9.4f %9.4f %9.4f %9.4f %9.4f %8s %8s\n" "$np" "$sz" "$mode" \
          "$cache" "$res" "$full" "$rst" "$raw" "$rawmem" "$r1" "$r2"
      done
    done
  done
done
echo "CSV: $CSV"
echo "full/raw = raw_s / full_s: fraction of the raw read bandwidth reached until fully restored"

if command -v gnuplot >/dev/null; then
gnuplot <<GP
set terminal pngcairo size 1200,480 font ",10"
set output "$OUT/restart.png"
set datafile separator ","
set logscale xy
set key top left
set grid
set xlabel "MiB per process"
set ylabel "seconds (median)"
set multiplot layout 1,2 title "crmpi restart vs raw read, same files, same run (1 process)"
do for [c in "drop warm"] {
  set title "page cache: ".c
  plot "$CSV" using (\$1==1 && strcol(3) eq "eager" && strcol(4) eq c ? \$2/1048576 : 1/0):6 w lp lw 2 t "eager: fully restored", \
       "$CSV" using (\$1==1 && strcol(3) eq "lazy" && strcol(4) eq c ? \$2/1048576 : 1/0):5 w lp lw 2 t "lazy: running again", \
       "$CSV" using (\$1==1 && strcol(3) eq "lazy" && strcol(4) eq c ? \$2/1048576 : 1/0):6 w lp lw 2 t "lazy: fully restored", \
       "$CSV" using (\$1==1 && strcol(3) eq "eager" && strcol(4) eq c ? \$2/1048576 : 1/0):8 w lp dt 2 t "raw read (warm buffer)", \
       "$CSV" using (\$1==1 && strcol(3) eq "eager" && strcol(4) eq c ? \$2/1048576 : 1/0):9 w lp dt 2 t "raw read into fresh memory"
}
unset multiplot
GP
echo "plot: $OUT/restart.png"
fi
