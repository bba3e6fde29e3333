#!/usr/bin/env bash
# perf/fast/run.sh [--quick] - what a checkpoint costs the application
# (asynchronous checkpoints, CRMPI_CKPT_MODE=async), one command.
#
# Runs bench_fast (see bench_fast.c for every figure) and prints each figure
# beside its baselines measured in the same run (medians of REPS runs):
#   blocked time per checkpoint (1 and 4 ranks, heap sizes, fraction of pages
#     written) vs a full memcpy of the warmed heap, a fork() snapshot and a
#     full synchronous write+fsync of the heap;
#   bytes written per checkpoint vs bytes dirtied (+ epoch file size);
#   writer throughput vs raw write+fsync of the same bytes, same filesystem;
#   slowdown of a compute loop from tracking (first-write faults);
#   the copy-on-write paper's 2-thread experiment (64 MiB, 10 checkpoints,
#     4 KiB .. 1 MiB modified between them) vs a memcpy of the data, back to
#     back and 100 ms apart;
#   crmpi_checkpoint() of 4 ranks with nothing written since the last one;
#   full checkpoints (every CRMPI_FULL_EVERY-th), timed apart, composed from
#     the previous epoch (the default) beside copied from memory;
#   several ranks: the epoch file laid out by rank 0's helper (the default)
#     beside created collectively in the call (CRMPI_LAYOUT_HELPER=off);
#   one rank owning two PUs: the staging copy alone beside shared with the
#     idle PU (the copy team, CRMPI_STAGE_THREADS).
# Writes perf/results/fast.csv, fast.txt and (with gnuplot) fast.png.
# --large: the sweep alone at 4 GiB per rank, 1 rank (4 ranks would need
# 16 GiB of heap plus as much for the memcpy baseline), 0.1-10% written
# (100% does not fit CRMPI_STAGING_MAX and is written in the call, like the
# 1 GiB 100% row): perf/results/fast_large.{csv,txt,png}.
# Environment overrides: SIZES (MiB per rank), FRACS (percent), NPS, REPS,
# CRMPI_BENCH_DIR (scratch directory on the filesystem to measure).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${CRMPI_BUILD:-$root/build}
name=fast large=
if [ "${1:-}" = "--quick" ]; then
  sizes=${SIZES:-64 256}; fracs=${FRACS:-0.1,1,10}; nps=${NPS:-1 4}; reps=${REPS:-3}
elif [ "${1:-}" = "--large" ]; then
  sizes=${SIZES:-4096}; fracs=${FRACS:-0.1,1,10}; nps=${NPS:-1}; reps=${REPS:-5}
  name=fast_large large=1
else
  sizes=${SIZES:-64 256 1024}; fracs=${FRACS:-0.1,1,10,100}; nps=${NPS:-1 4}; reps=${REPS:-5}
fi

[ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" -DCRMPI_BUILD_PERF=ON >/dev/null
cmake --build "$build" -j2 --target bench_fast_mpi bench_fast_cr >/dev/null
bin=$build/perf/fast
out=$root/perf/results
mkdir -p "$out"
scratch=$(mktemp -d "${CRMPI_BENCH_DIR:-$root/build}/fastbench.XXXXXX")
raw=$scratch/raw.csv
trap 'rm -rf "$scratch"' EXIT
export CRMPI_DIR=$scratch/ckpt CRMPI_LOG=error OMPI_MCA_op=^avx
# CRMPI_STAGING_MAX keeps its default (1G) unless set: a full epoch of a
# 1 GiB heap is then written synchronously (the first checkpoint).
mpi=(mpiexec --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

for np in $nps; do
  for mib in $sizes; do
    echo "sweep: $np rank(s), $mib MiB per rank, fractions $fracs %" >&2
    rm -rf "$CRMPI_DIR"
    "${mpi[@]}" -np "$np" "$bin/bench_fast_mpi" sweep "$mib" "$fracs" "$reps" >> "$raw"
  done
done
if [ -z "$large" ]; then
# Baseline of the full table: full checkpoints that copy every page in the
# call (CRMPI_FULL_FROM_CHAIN=0), measured in this run.
for np in $nps; do
  for mib in $sizes; do
    echo "full checkpoints from memory: $np rank(s), $mib MiB per rank" >&2
    rm -rf "$CRMPI_DIR"
    CRMPI_FULL_FROM_CHAIN=0 "${mpi[@]}" -x CRMPI_FULL_FROM_CHAIN -np "$np" \
      "$bin/bench_fast_mpi" full "$mib" "$reps" >> "$raw"
  done
done
# Baseline of the layout: jobs of several ranks with the epoch file created
# collectively through MPI-IO in the call (CRMPI_LAYOUT_HELPER=off), as
# before rank 0's layout helper made it, same run; rows "blocked_coll".
for np in $nps; do
  [ "$np" -gt 1 ] || continue
  for mib in $sizes; do
    echo "collective layout (no helper): $np ranks, $mib MiB per rank, 1 %" >&2
    rm -rf "$CRMPI_DIR"
    CRMPI_LAYOUT_HELPER=off "${mpi[@]}" -x CRMPI_LAYOUT_HELPER -np "$np" \
      "$bin/bench_fast_mpi" sweep "$mib" 1 "$reps" | sed -n 's/^blocked,/blocked_coll,/p' >> "$raw"
  done
done
# The staging copy team (src/exec/copy_team.c): one rank that owns two PUs
# (--bind-to none; a hybrid job's binding), copying alone
# (CRMPI_STAGE_THREADS=1) and with the default team (one helper per PU it
# owns), alternating, same run; rows *_pus2 and *_pus2alone, each with the
# memcpy and fork baselines of its own job.
if [ "$(nproc)" -ge 2 ]; then
  for rep in 1 2; do
    for st in 1 0; do
      tag=pus2; [ "$st" = 1 ] && tag=pus2alone
      echo "copy team: 1 rank owning 2 PUs, CRMPI_STAGE_THREADS=$st, 1024 MiB, 1 % (round $rep)" >&2
      rm -rf "$CRMPI_DIR"
      CRMPI_STAGE_THREADS=$st "${mpi[@]}" -x CRMPI_STAGE_THREADS --bind-to none -np 1 \
        "$bin/bench_fast_mpi" sweep 1024 1 "$reps" |
        sed -n "s/^blocked,/blocked_$tag,/p; s/^base,/base_$tag,/p" >> "$raw"
    done
  done
fi
echo "empty checkpoint, 4 ranks" >&2
rm -rf "$CRMPI_DIR"
"${mpi[@]}" -np 4 "$bin/bench_fast_mpi" empty 21 >> "$raw"
echo "two-thread experiment, 64 MiB" >&2
rm -rf "$CRMPI_DIR"
"$bin/bench_fast_cr" paper 64 >> "$raw"
fi
cp "$raw" "$out/$name.csv"

{
echo "crmpi fast checkpoints (CRMPI_CKPT_MODE=async): medians of $reps runs, baselines from the same run"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
echo "filesystem of the checkpoints: $(df -T "$scratch" | awk 'NR==2{print $2" ("$1")"}'), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 - "$raw" <<'PY'
import sys
rows = [l.strip().split(',') for l in open(sys.argv[1]) if l.strip()]
base = {(int(r[1]), int(r[2])): list(map(float, r[4:7])) for r in rows if r[0] == 'base'}
def get(kind):
    return {(int(r[1]), int(r[2]), float(r[3])): list(map(float, r[4:])) for r in rows if r[0] == kind}
blk, byt, wr, tr = get('blocked'), get('bytes'), get('writer'), get('track')
print('time the application is blocked per checkpoint (slowest rank), ms. In it: commit, scan for')
print('written pages, copy to the staging buffer, begin (the slowest of each); floor: every rank\'s')
print('scan + copy summed over the ranks, over the CPUs they share (at most one per rank). Those are')
print('wall times: a rank preempted by another inside its scan or copy counts the wait too, so with')
print('ranks sharing CPUs the floor can overstate the least the slowest rank can be blocked:')
print('%5s %7s %7s %9s %8s %6s %6s %7s %6s %9s %9s %9s %9s %9s' % ('ranks', 'MiB/rk', 'written',
      'blocked', '(commit', 'scan', 'copy', 'begin)', 'floor', 'memcpy', 'fork', 'wr+fsync',
      'memcpy/x', 'fork/x'))
for k in sorted(blk):
    b = blk[k]; m, f, w = base[k[:2]]
    scan, floor = (b[4], b[5]) if len(b) > 5 else (float('nan'), float('nan'))
    print('%5d %7d %6g%% %9.2f %8.2f %6.2f %6.2f %7.2f %6.2f %9.1f %9.1f %9.1f %9.1f %9.1f' %
          (k[0], k[1], k[2], b[0], b[1], scan, b[2], b[3], floor, m, f, w, m / b[0], f / b[0]))
coll = get('blocked_coll')
if coll:
    print('\njobs of several ranks: the epoch file laid out by rank 0\'s helper process (the default; begin')
    print('is one allgather and one agreement) vs created collectively through MPI-IO in the call')
    print('(CRMPI_LAYOUT_HELPER=off, same run), ms, slowest rank:')
    print('%5s %7s %7s %9s %7s %11s %10s %9s' % ('ranks', 'MiB/rk', 'written', 'blocked', 'begin',
          'collective', 'its begin', 'coll/x'))
    for k in sorted(coll):
        if k in blk:
            b, c = blk[k], coll[k]
            print('%5d %7d %6g%% %9.2f %7.2f %11.2f %10.2f %9.2f' % (k[0], k[1], k[2], b[0], b[3],
                  c[0], c[3], c[0] / b[0]))
team = [r for r in rows if r[0] in ('blocked_pus2', 'blocked_pus2alone')]
if team:
    print('\none rank owning 2 PUs (--bind-to none), 1 GiB, 1% written: the staging copy by the calling')
    print('thread alone (CRMPI_STAGE_THREADS=1) vs shared with the PUs the rank owns (the default), jobs')
    print('alternating, each against the memcpy and fork of its own job, ms:')
    print('%-8s %9s %6s %6s %9s %9s %9s %9s' % ('copy', 'blocked', 'scan', 'copy', 'memcpy', 'fork',
          'memcpy/x', 'fork/x'))
    tb = [r for r in rows if r[0] in ('base_pus2', 'base_pus2alone')]
    for r, bs in zip(team, tb):
        b, m, f = float(r[4]), float(bs[4]), float(bs[5])
        print('%-8s %9.2f %6.2f %6.2f %9.1f %9.1f %9.1f %9.1f' % ('alone' if r[0].endswith('alone')
              else 'team', b, float(r[8]), float(r[6]), m, f, m / b, f / b))
full, fullmem = get('full'), get('fullmem')
if full:
    print('\nfull checkpoints (every CRMPI_FULL_EVERY-th; the rows above are medians, i.e. incremental')
    print('ones), 1% written between checkpoints, medians of the full ones, ms. Composed (the default):')
    print('the call copies the written pages, the writer takes the others from the previous epoch\'s')
    print('files; "from memory" (CRMPI_FULL_FROM_CHAIN=0, same run) copies every page in the call.')
    print('staged: how many went to the writer (the others exceeded CRMPI_STAGING_MAX and were written')
    print('in the call); writer: the time spent writing the epoch, fsync included (inside the call when not')
    print('staged):')
    print('%5s %7s %9s %7s %7s %7s %9s %10s %7s %9s %9s %9s %9s %9s' % ('ranks', 'MiB/rk', 'blocked',
          'copy', 'begin', 'staged', 'writer', 'memory', 'staged', 'writer', 'memory/x',
          'memcpy', 'memcpy/x', 'fork/x'))
    nan = float('nan')
    for k in sorted(full):
        b = full[k]; m, f, w = base[k[:2]]
        fm = fullmem.get(k, [nan] * 5)
        wb = b[4] if len(b) > 4 else nan
        print('%5d %7d %9.2f %7.2f %7.2f %7d %9.1f %10.2f %7d %9.1f %9.1f %9.1f %9.1f %9.2f' %
              (k[0], k[1], b[0], b[1], b[2], int(b[3]), wb, fm[0],
               int(fm[3]) if fm[3] == fm[3] else -1, fm[4], fm[0] / b[0], m, m / b[0], f / b[0]))
print('\nbytes written per checkpoint vs bytes dirtied (per rank):')
print('%5s %7s %7s %12s %12s %12s %8s' % ('ranks', 'MiB/rk', 'written', 'dirty', 'page bytes', 'file bytes', 'file/dirty'))
for k in sorted(byt):
    d, p, f = byt[k]
    print('%5d %7d %6g%% %12d %12d %12d %8.3f' % (k[0], k[1], k[2], d, p, f, f / d))
print('\nbackground writer throughput vs raw write+fsync of the same bytes, MB/s:')
print('(writer: the epoch file, its pages, tables and fsync. Before it, the same job re-arms dirty-page')
print(' tracking and publishes the previous epoch\'s index (its commit record) when that commit was')
print(' deferred: both off the blocking phase, in ms; the sweep completes each commit with')
print(' crmpi_checkpoint_wait(), so its jobs publish none)')
print('%5s %7s %7s %9s %9s %7s %9s %9s' % ('ranks', 'MiB/rk', 'written', 'writer', 'raw', 'ratio',
      'rearm ms', 'index ms'))
for k in sorted(wr):
    a, r = wr[k][:2]
    ra = wr[k][2] if len(wr[k]) > 2 else float('nan')
    ix = wr[k][3] if len(wr[k]) > 3 else float('nan')
    print('%5d %7d %6g%% %9.1f %9.1f %7.2f %9.2f %9.2f' % (k[0], k[1], k[2], a, r,
          a / r if r else 0, ra, ix))
print('\ncompute loop writing the pages (4 passes) after a checkpoint, ms: tracked heap vs malloc memory')
print('%5s %7s %7s %9s %9s %9s' % ('ranks', 'MiB/rk', 'written', 'tracked', 'untracked', 'extra'))
for k in sorted(tr):
    a, u = tr[k]
    print('%5d %7d %6g%% %9.3f %9.3f %9.3f' % (k[0], k[1], k[2], a, u, a - u))
for r in rows:
    if r[0] == 'empty':
        print('\ncrmpi_checkpoint() of %s ranks, nothing written since the last: %.3f ms (target 5 ms)' % (r[1], float(r[4])))
pp = [r for r in rows if r[0] == 'paper']
if pp:
    print('\ntwo persistent threads, %s MiB, 10 checkpoints, bytes modified between them; blocked: time' % pp[0][2])
    print('inside cr_checkpoint() (the slower thread), mean and median of the 10; wall: the loop\'s time per')
    print('checkpoint less the gap; speedup: memcpy of the data over the mean blocked time. Back to back,')
    print('each checkpoint waits for the previous epoch\'s writer (its fsync; every 8th epoch is full):')
    print('%8s %10s %10s %10s %10s %10s %8s' % ('gap ms', 'modified', 'wall ms', 'blocked', 'median', 'memcpy ms', 'speedup'))
    for r in pp:
        gap, mean, med = (int(r[6]), float(r[7]), float(r[8])) if len(r) >= 9 else (0, float(r[4]), float(r[4]))
        print('%8d %10s %10.3f %10.3f %10.3f %10.3f %8.1f' % (gap, r[3], float(r[4]), mean, med, float(r[5]), float(r[5]) / mean))
PY
} | tee "$out/$name.txt"

if command -v gnuplot >/dev/null; then
  grep '^blocked,' "$raw" > "$scratch/blk.csv" || true
  grep '^base,' "$raw" > "$scratch/base.csv" || true
  # One heap size (--large): a range around it, not gnuplot's own +-1%.
  xr=
  set -- $sizes
  [ $# -eq 1 ] && xr="set xrange [$(( $1 / 2 )):$(( $1 * 3 / 2 ))]; set xtics ($1)"
  gnuplot <<GP
set terminal pngcairo size 1000,450
set output "$out/$name.png"
set datafile separator ","
set multiplot layout 1,2 title "crmpi asynchronous checkpoint: time blocked (slowest rank)"
set logscale xy
set xlabel "pages written between checkpoints (%)"
set ylabel "ms"
set key top left font ",8"
plot for [np in "$nps"] for [m in "$sizes"] "$scratch/blk.csv" \
     using (\$2==np+0 && \$3==m+0 ? \$4 : 1/0):5 with linespoints title sprintf("%s rank(s), %s MiB", np, m)
unset logscale x
set logscale y
set xlabel "heap per rank (MiB)"
$xr
set style data linespoints
plot "$scratch/base.csv" using 3:5 title "memcpy heap", "" using 3:6 title "fork()", \
     "" using 3:7 title "write+fsync heap", \
     "$scratch/blk.csv" using (\$4==1 ? \$3 : 1/0):5 title "crmpi, 1% written" with points pt 7
unset multiplot
GP
  echo "wrote $out/$name.csv $out/$name.txt $out/$name.png"
else
  echo "wrote $out/$name.csv $out/$name.txt (gnuplot not found: no plot)"
fi
