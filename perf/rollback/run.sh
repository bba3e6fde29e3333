#!/usr/bin/env bash
# perf/rollback/run.sh - cr_rollback() time against the pages written since
# the checkpoint, beside a memcpy of the written bytes and a full restore.
#
#   perf/rollback/run.sh [--quick]     (BUILD=dir to use another build)
#
#   default  1 GiB heap; 0.1% 0.3% 1% 3% 10% of its pages written; 5 reps
#   --quick  64 MiB heap; 0.1% 1% 10%; 2 reps (smoke test)
#
# bench_rollback fills the heap, checkpoints once (committed), then per
# fraction writes one word into that many distinct pages (spread over the
# heap, then consecutive: BENCH_PATTERN) and rolls back
# (wall: from the call until the checkpoint call returns CR_ROLLEDBACK;
# engine: the collector alone; memcpy: copying the same number of bytes
# between two warm buffers outside the region; read: checkpoint bytes read
# back - whole extents around the pages). Then the program is restarted
# from that checkpoint 3 times (eager restore, page cache warm): restore_s
# is what bringing the whole heap back costs instead. Medians.
# Output: table, perf/results/rollback.{csv,txt} (+ .png with gnuplot).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${CRMPI_PERF_OUT:-$ROOT/perf/results}
case "${1:-default}" in
  --quick) size=$((64 << 20)); fracs="0.001 0.01 0.1"; reps=2 ;;
  default) size=$((1 << 30)); fracs="0.001 0.003 0.01 0.03 0.1"; reps=5 ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
cmake --build "$BUILD" -j2 --target bench_rollback >/dev/null
B=$BUILD/perf/rollback/bench_rollback
WORK=${CRMPI_BENCH_DIR:-$BUILD/bench-rollback}
mkdir -p "$OUT"
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
npages=$((size / 4096))
pages=""
for f in $fracs; do pages="$pages $(awk -v f="$f" -v n="$npages" 'BEGIN{printf "%d", f*n}')"; done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for pat in spread contig; do
  rm -rf "$WORK/ckpt"
  BENCH_PATTERN=$pat CRMPI_DIR=$WORK/ckpt "$B" "$size" "$reps" $pages | sed "s/^rollback,/$pat,/" > "$WORK/$pat.csv"
done
for i in 1 2 3; do
  CRMPI_DIR=$WORK/ckpt CRMPI_RESTORE=eager "$B" "$size" "$reps" $pages >> "$WORK/restore.csv"
done
restore=$(grep '^restore,' "$WORK/restore.csv" | cut -d, -f3 | median)

TXT=$OUT/rollback.txt
CSV=$OUT/rollback.csv
exec > >(tee "$TXT")
echo "# perf/rollback/run.sh ${1:-default} on $(date -u +%F): $(uname -r), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, tracker $(CRMPI_LOG=info "$B" 4096 1 1 2>&1 >/dev/null | sed -n 's/.*dirty-page tracker: \([^ ]*\).*/\1/p' | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# PRELIMINARY: the machine is shared (CI and other builds running): figures vary between runs"
echo "# heap $((size >> 20)) MiB; medians of $reps rollbacks per row; full restore (eager, warm cache): median of 3 restarts = ${restore} s"
echo "# spread: each written page in another stored extent (worst case: the rollback reads whole"
echo "#   extents, up to 1 MiB, for their CRC); contig: the written pages are consecutive"
echo "pattern,pages_written,fraction,rollback_s,engine_s,memcpy_s,bytes_read,rollback_vs_memcpy,restore_s,rollback_vs_restore" > "$CSV"
printf "%-7s %8s %8s %11s %11s %11s %12s %10s %10s\n" pattern pages frac rollback_s engine_s memcpy_s read_MiB rb/memcpy rb/restore
for pat in spread contig; do
for p in $pages; do
  rows=$(grep "^$pat,$p," "$WORK/$pat.csv")
  wall=$(echo "$rows" | cut -d, -f4 | median)
  eng=$(echo "$rows" | cut -d, -f5 | median)
  mc=$(echo "$rows" | cut -d, -f6 | median)
  rd=$(echo "$rows" | cut -d, -f7 | median)
  frac=$(awk -v p="$p" -v n="$npages" 'BEGIN{printf "%.4f", p/n}')
  r1=$(awk -v a="$wall" -v b="$mc" 'BEGIN{printf "%.1f", (b>0? a/b : 0)}')
  r2=$(awk -v a="$wall" -v b="$restore" 'BEGIN{printf "%.4f", (b>0? a/b : 0)}')
  echo "$pat,$p,$frac,$wall,$eng,$mc,$rd,$r1,$restore,$r2" >> "$CSV"
  printf "%-7s %8s %8s %11.6f %11.6f %11.6f %12.1f %10s %10s\n" "$pat" "$p" "$frac" "$wall" "$eng" "$mc" \
    "$(awk -v b="$rd" 'BEGIN{print b/1048576}')" "$r1" "$r2"
done
done
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$OUT/rollback.png"
set datafile separator ","
set logscale xy
set key bottom right
set xlabel "pages written since the checkpoint (heap $((size >> 20)) MiB)"
set ylabel "seconds"
set title "cr_rollback vs memcpy of the written bytes vs full restore (preliminary, loaded machine)"
plot "< grep ^spread $CSV" using 2:4 with linespoints title "cr_rollback, pages spread", \
     "< grep ^contig $CSV" using 2:4 with linespoints title "cr_rollback, pages consecutive", \
     "< grep ^spread $CSV" using 2:6 with linespoints title "memcpy of the written bytes", \
     "< grep ^spread $CSV" using 2:9 with lines title "full restore (restart)"
GP
fi
