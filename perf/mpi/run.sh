#!/usr/bin/env bash
# perf/mpi/run.sh [--quick] - cost of libcrmpi's MPI layer, one command.
#
# Builds (if needed) and runs bench_mpi twice per round, interleaved so both
# see the same machine load: linked with Open MPI alone ("plain") and with
# libcrmpi ("crmpi", wrappers active, checkpoints off; "crmpi+ckpt",
# crmpi_checkpoint() every 10 halo steps). Prints each figure beside its
# baseline from the same run with the ratio, writes
# perf/results/mpi.csv and perf/results/mpi.png.
#   ping-pong one-way latency/bandwidth, 2 ranks, 1 B .. 4 MiB
#   halo exchange (2-D, 512x512 doubles per rank), 2 ranks, us per step
#   crmpi_checkpoint() of 2 and 4 ranks with nothing written since the last,
#   back to back (each waits for the previous epoch's fsync in the background
#   writer) and, 4 ranks, 20 ms apart (that write done meanwhile)
#   an application's per-step crmpi_need_checkpoint() (never answering yes)
#   after 500 us of work, 2 and 4 ranks, equal work or the last rank 50%
#   longer, vs the same 2-int MPI_Allreduce called by the program: us per step
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${CRMPI_BUILD:-$root/build}
quick=
rounds=5
[ "${1:-}" = "--quick" ] && { quick=--quick; rounds=2; }

[ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j2 --target bench_mpi_plain bench_mpi_crmpi >/dev/null
bin=$build/perf/mpi
out=$root/perf/results
mkdir -p "$out"
raw=$(mktemp)
ckdir=$(mktemp -d)
trap 'rm -rf "$raw" "$ckdir"' EXIT
# Checkpoints of the runs go to a scratch directory, fresh for every run.
export CRMPI_DIR=$ckdir/ckpt

mpi=(mpiexec --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
export CRMPI_LOG=none   # checkpoints refused by a build without the engine stay quiet

run() {   # variant np args...
  local v=$1 np=$2; shift 2
  local exe=$bin/bench_mpi_plain
  [ "$v" != plain ] && exe=$bin/bench_mpi_crmpi
  rm -rf "$CRMPI_DIR"
  "${mpi[@]}" -np "$np" "$exe" "$@" $quick | sed "s/^/$v,/" >> "$raw"
}

for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  run plain 2 pingpong
  run crmpi 2 pingpong
  run plain 2 halo
  run crmpi 2 halo
  run crmpi+ckpt 2 halo --ckpt-every 10
  run crmpi 2 ckpt
  run crmpi 4 ckpt
  run crmpi 4 ckpt --gap-ms 20
  for np in 2 4; do
    for imb in 0 50; do
      run plain $np poll --imbalance $imb
      CRMPI_CKPT_INTERVAL=100000000 run crmpi $np poll --imbalance $imb
    done
  done
done

python3 - "$raw" "$out/mpi.csv" <<'PY'
import csv, statistics, sys
raw, dst = sys.argv[1], sys.argv[2]
vals = {}
for line in open(raw):
    v, kind, param, value = line.strip().split(',')
    vals.setdefault((kind, int(param), v), []).append(float(value))
med = {k: statistics.median(x) for k, x in vals.items()}
rows = []
print('%-28s %14s %14s %8s' % ('figure', 'crmpi', 'baseline', 'ratio'))
sizes = sorted({p for (k, p, v) in med if k == 'pingpong'})
for s in sizes:
    c, b = med.get(('pingpong', s, 'crmpi')), med.get(('pingpong', s, 'plain'))
    bw_c, bw_b = s / c, s / b     # bytes/us = MB/s
    print('%-28s %11.3f us %11.3f us %8.3f' % ('pingpong latency %d B' % s, c, b, c / b))
    rows.append(['pingpong_latency_us', s, c, b, c / b])
    rows.append(['pingpong_bandwidth_MBps', s, bw_c, bw_b, bw_c / bw_b])
for s in sizes:
    if s >= 65536:
        print('%-28s %9.1f MB/s %9.1f MB/s %8.3f' % ('bandwidth %d B' % s, s / med[('pingpong', s, 'crmpi')],
              s / med[('pingpong', s, 'plain')], med[('pingpong', s, 'plain')] / med[('pingpong', s, 'crmpi')]))
b = med[('halo', 0, 'plain')]
for v, p, name in (('crmpi', 0, 'halo step, ckpt off'), ('crmpi+ckpt', 10, 'halo step, ckpt every 10')):
    c = med[('halo', p, v)]
    print('%-28s %11.1f us %11.1f us %8.3f' % (name, c, b, c / b))
    rows.append(['halo_step_us_' + v, p, c, b, c / b])
for kind, np_, how in (('ckpt', 2, 'back to back'), ('ckpt', 4, 'back to back'),
                       ('ckptgap', 4, '20 ms apart')):
    c = med.get((kind, np_, 'crmpi'))
    st = vals.get((kind + '_status', np_, 'crmpi'), [0])[-1]
    if c is not None:
        print('%-28s %11.1f us %14s %8s   (status %d%s)' % ('crmpi_checkpoint %d ranks' % np_, c, '5000 (target)',
              '%.3f' % (c / 5000), st, ', engine absent: drain+agree only' if st == -38 else
              ', nothing written since the previous one, ' + how))
        rows.append(['checkpoint_us' + ('' if kind == 'ckpt' else '_20ms_apart'), np_, c, 5000, c / 5000])
for (kind, imb) in sorted({(k, p) for (k, p, v) in med if k.startswith('poll_np')}):
    c, b = med.get((kind, imb, 'crmpi')), med.get((kind, imb, 'plain'))
    if c is None or b is None:
        continue
    name = 'step+need_checkpoint %srk %d%%' % (kind[7:], imb)
    print('%-28s %11.1f us %11.1f us %8.3f' % (name, c, b, c / b))
    rows.append(['step_with_need_checkpoint_us_' + kind[5:], imb, c, b, c / b])
with open(dst, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['figure', 'param', 'crmpi', 'baseline', 'ratio'])
    w.writerows(rows)
PY

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,420
set output "$out/mpi.png"
set datafile separator ","
set multiplot layout 1,2 title "libcrmpi vs plain Open MPI (2 ranks)"
set logscale xy
set xlabel "message size (bytes)"
set ylabel "one-way latency (us)"
set key top left
plot "< grep ^pingpong_latency_us $out/mpi.csv" using 2:3 with linespoints title "crmpi", \
     "" using 2:4 with linespoints title "plain"
set ylabel "bandwidth (MB/s)"
plot "< grep ^pingpong_bandwidth_MBps $out/mpi.csv" using 2:3 with linespoints title "crmpi", \
     "" using 2:4 with linespoints title "plain"
unset multiplot
GP
  echo "wrote $out/mpi.csv $out/mpi.png"
else
  echo "wrote $out/mpi.csv (gnuplot not found: no plot)"
fi
