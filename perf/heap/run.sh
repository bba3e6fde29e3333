#!/bin/sh
# perf/heap/run.sh [--quick] - persistent heap vs glibc, jemalloc, mimalloc
# and PMDK libpmemobj: alloc/free throughput for 16 B..64 KiB objects on 1
# and 2 threads, a larson-style mixed workload, and memory overhead.
#
# Builds the benchmark binaries if needed, runs every allocator RUNS times
# (default 5, --quick 1) interleaved, and reports medians: a table on stdout
# with each figure beside glibc's (measured in the same run) as a ratio;
# CSV, the table (heap.txt) and a PNG in perf/results/.
# Env: BUILD_DIR (default ./build), RUNS, BUDGET (seconds per figure, 0.3).
# libpmemobj's pool lives on tmpfs (/dev/shm) with PMEM_IS_PMEM_FORCE=1, so
# it flushes with CPU instructions instead of msync: its fastest setting.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$top/build}
runs=${RUNS:-5}
budget=${BUDGET:-0.3}
if [ "${1:-}" = "--quick" ]; then runs=1; budget=0.1; fi
out=$top/perf/results
mkdir -p "$out"

[ -f "$build/CMakeCache.txt" ] || cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target bench_heap_cr bench_heap_glibc >/dev/null
for t in bench_heap_je bench_heap_mi bench_heap_pmem; do
  cmake --build "$build" -j2 --target $t >/dev/null 2>&1 || echo "note: $t not built (library missing)"
done

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for r in $(seq "$runs"); do
  for a in glibc cr je mi pmem; do
    bin=$build/perf/heap/bench_heap_$a
    [ -x "$bin" ] || continue
    export BENCH_BUDGET=$budget PMEM_IS_PMEM_FORCE=1
    "$bin" sized >>"$raw"
    "$bin" mixed 1 >>"$raw"
    "$bin" mixed 2 >>"$raw"
  done
  echo "run $r/$runs done" >&2
done

python3 - "$raw" "$out" "$runs" <<'PY' | tee "$out/heap.txt"
import csv, statistics, sys, subprocess, shutil
raw, out, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(raw):
    a, w, t, ops, live, fp, reg = line.strip().split(',')
    r = rows.setdefault((w, int(t), a), {'ops': [], 'live': [], 'fp': [], 'reg': []})
    r['ops'].append(float(ops))
    if live: r['live'].append(float(live)); r['fp'].append(float(fp))
    if reg and float(reg) > 0: r['reg'].append(float(reg))
allocs = [a for a in ['crmalloc', 'glibc', 'jemalloc', 'mimalloc', 'pmemobj']
          if any(k[2] == a for k in rows)]
loads = []
for k in rows:
    if (k[0], k[1]) not in loads: loads.append((k[0], k[1]))
def order(l):
    w, t = l
    return (t, 1 if w == 'mixed' else 0, int(w[4:]) if w.startswith('size') else 0)
loads.sort(key=order)
med = lambda v: statistics.median(v) if v else float('nan')
with open(f'{out}/heap.csv', 'w', newline='') as f:
    c = csv.writer(f)
    c.writerow(['workload', 'threads', 'allocator', 'ops_per_s_median', 'runs',
                'ratio_vs_glibc', 'live_bytes', 'footprint_bytes', 'overhead_ratio', 'region_bytes'])
    for (w, t) in loads:
        g = med(rows.get((w, t, 'glibc'), {'ops': []})['ops'])
        for a in allocs:
            r = rows.get((w, t, a))
            if not r: continue
            o = med(r['ops']); live = med(r['live']); fp = med(r['fp'])
            c.writerow([w, t, a, f'{o:.0f}', len(r['ops']), f'{o / g:.3f}',
                        f'{live:.0f}' if r['live'] else '', f'{fp:.0f}' if r['fp'] else '',
                        f'{fp / live:.3f}' if r['live'] else '',
                        f'{med(r["reg"]):.0f}' if r['reg'] else ''])
print(f'\nHeap allocator throughput, Mops/s (median of {runs} runs); (x) = ratio to glibc\n')
hdr = f"{'workload':<12}{'thr':>4}" + ''.join(f'{a:>19}' for a in allocs) + f"{'cr/pmemobj':>12}"
print(hdr); print('-' * len(hdr))
dat = open(f'{out}/heap.dat', 'w')
dat.write('workload ' + ' '.join(allocs) + '\n')
for (w, t) in loads:
    g = med(rows[(w, t, 'glibc')]['ops'])
    line = f'{w:<12}{t:>4}'
    vals = []
    for a in allocs:
        o = med(rows[(w, t, a)]['ops']) if (w, t, a) in rows else float('nan')
        vals.append(o)
        line += f'{o / 1e6:>11.2f} ({o / g:4.2f})'
    cr = vals[allocs.index('crmalloc')]
    pm = vals[allocs.index('pmemobj')] if 'pmemobj' in allocs else float('nan')
    line += f'{cr / pm:>11.1f}x'
    print(line)
    dat.write(f'{w.replace("size", "")}/{t}t ' + ' '.join(f'{v / 1e6:.3f}' for v in vals) + '\n')
dat.close()
print('\nMemory: mixed workload, resident-set growth vs live bytes requested (median)\n')
print(f"{'allocator':<12}{'thr':>4}{'live MiB':>10}{'RSS+ MiB':>10}{'overhead':>10}")
for t in (1, 2):
    for a in allocs:
        r = rows.get(('mixed', t, a))
        if not r or not r['live']: continue
        live, fp = med(r['live']), med(r['fp'])
        print(f'{a:<12}{t:>4}{live / 2**20:>10.2f}{fp / 2**20:>10.2f}{fp / live:>9.2f}x')
print('\nPersistent region in use after cr_heap_trim (what a full checkpoint saves) vs live bytes\n')
for t in (1, 2):
    r = rows.get(('mixed', t, 'crmalloc'))
    if r and r['reg']:
        live, reg = med(r['live']), med(r['reg'])
        print(f'crmalloc {t} thread(s): live {live / 2**20:.2f} MiB, region in use {reg / 2**20:.2f} MiB '
              f'-> {reg / live:.2f}x')
small = [(w, t) for (w, t) in loads if w.startswith('size') and int(w[4:]) <= 1024]
worst = min(med(rows[(w, t, 'crmalloc')]['ops']) / med(rows[(w, t, 'glibc')]['ops']) for (w, t) in small)
print(f'\nTarget "within 1.5x of glibc on small objects (<= 1 KiB)": worst cr/glibc = {worst:.2f} '
      f'-> {"met" if worst >= 1 / 1.5 else "NOT met"}')
if 'pmemobj' in allocs:
    best = min(med(rows[(w, t, 'crmalloc')]['ops']) / med(rows[(w, t, 'pmemobj')]['ops']) for (w, t) in loads)
    print(f'Target ">= 5x faster than libpmemobj": lowest cr/pmemobj = {best:.1f}x '
          f'-> {"met" if best >= 5 else "NOT met"}')
if shutil.which('gnuplot'):
    n = len(allocs)
    gp = f"""set terminal pngcairo size 1400,600 font ',10'
set output '{out}/heap.png'
set title 'Allocator throughput (median of {runs} runs): object size / threads'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'Mops/s (log)'
set xtics rotate by -45
set key outside right
set grid ytics
plot for [i=2:{n + 1}] '{out}/heap.dat' using i:xtic(1) title columnheader(i)
"""
    subprocess.run(['gnuplot'], input=gp.encode(), check=True)
    print(f'\nwrote {out}/heap.csv, {out}/heap.png')
else:
    print(f'\nwrote {out}/heap.csv (gnuplot not found: no PNG)')
PY
