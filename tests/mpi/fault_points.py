#!/usr/bin/env python3
"""fault_points.py - SIGKILL one rank of an MPI job at every named fault
point, restart the job, and check that it resumes from the newest committed
epoch and finishes with the right answer.

Usage: fault_points.py [--only P,P...] [--jobs J] TOP WORKDIR CKPT_TOOL -- MPIEXEC... -np N APP ARGS...

J points (default 3) are tested at the same time, each in its own
directory WORKDIR/POINT: a run spends most of its time waiting (MPI start-up
and tear-down, fsync), not computing.

The points come from src/common/fault_points.def (the table the code is
checked against); CASES below says how each one is reached. A point without
a case, or a case without a point, fails the test. For each point:

  phase "ckpt"    a fresh run with CRMPI_FAULT=POINT@N#R: rank R dies at the
                  Nth time it reaches POINT while checkpointing
  phase "restore" a fresh run killed after a few commits (mpi-quiesced), then
                  a restart with CRMPI_FAULT=POINT#R: rank R dies while
                  restoring; the index must be unchanged by that
  phase "finish"  a fresh run killed at its normal end (around the finished
                  marker)
  phase "rerun"   a run to the end, then another one that is killed when it
                  commits its first epoch with the marker still there

Each faulty run must die (a run that finishes never reached the point:
failure). Then the directory is read with `crmpi-ckpt list`/`verify`: the
newest committed epoch must be the expected one (N-1 when the kill came
before the commit of the Nth checkpoint, N after it; for points hit many
times per checkpoint only what the index says) and must verify. The restart
(no fault, CRMPI_LOG=info) must print "restored checkpoint epoch E" on every
rank with E that epoch (or no such line where a fresh start is expected),
and its output must equal the uninterrupted reference run's.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# point: (spec after the name, phase, expected newest committed epoch after the kill)
#   'N-1' / 'N': the kill came before / after the commit of checkpoint N
#   'index'    : hit many times per checkpoint; whatever the index names
#   'same'     : a restore point: the index is what the setup left
#   'end'/'fresh': finish phase: resume from the last epoch / start afresh
CASES = {
    'epoch-create':        ('@3#1', 'ckpt', 'N-1'),
    'epoch-begun':         ('@3#0', 'ckpt', 'N-1'),
    'layout-publishing':   ('@3#0', 'ckpt', 'N-1'),
    'layout-waiting':      ('@3#1', 'ckpt', 'N-1'),
    'store-pwrite':        ('@40#1', 'ckpt', 'index'),
    'epoch-put':           ('@20#0', 'ckpt', 'index'),
    'epoch-fsync':         ('@3#1', 'ckpt', 'N-1'),
    'epoch-finished':      ('@3#0', 'ckpt', 'N-1'),
    'index-write':         ('@3#0', 'ckpt', 'N-1'),
    'index-written':       ('@3#0', 'ckpt', 'N-1'),
    'index-fsync':         ('@3#0', 'ckpt', 'N-1'),
    'index-synced':        ('@3#0', 'ckpt', 'N-1'),
    'index-rename':        ('@3#0', 'ckpt', 'N-1'),
    'index-renamed':       ('@3#0', 'ckpt', 'N'),    # renamed on rank 0, not known to the others
    'dir-fsync':           ('@3#0', 'ckpt', 'N'),
    'index-committed':     ('@3#1', 'ckpt', 'N'),
    'rank-committed':      ('@3#1', 'ckpt', 'N'),    # rank 1 committed, rank 0 may not have
    'engine-collecting':   ('@3#0', 'ckpt', 'N-1'),
    'engine-collected':    ('@3#1', 'ckpt', 'N-1'),
    'engine-committed':    ('@3#0', 'ckpt', 'N'),
    'mpi-drain-exchanged': ('@3#1', 'ckpt', 'N-1'),
    'mpi-drain-queued':    ('@9#0', 'ckpt', 'index'),
    'mpi-quiesced':        ('@3#1', 'ckpt', 'N-1'),
    'restore-opened':      ('#1', 'restore', 'same'),
    'restore-pages':       ('#0', 'restore', 'same'),
    'restore-resuming':    ('#1', 'restore', 'same'),
    'mpi-rebuilt':         ('#0', 'restore', 'same'),
    # Every rank reaches these; all are killed so the marker's state is known.
    'finished-marking':    ('', 'finish', 'end'),
    'finished-marked':     ('#0', 'finish', 'fresh'),
    'marker-removing':     ('', 'rerun', 'fresh'),
    # The background writer (asynchronous mode): it writes epoch N while the
    # application runs on; only the index tells what was committed. It puts
    # an epoch's pages in batches of up to 8 MiB: one hit per epoch here.
    'writer-put':          ('@3#1', 'ckpt', 'index', 'async'),
    'writer-finished':     ('@3#0', 'ckpt', 'index', 'async'),
    # Reading the previous chain for a full epoch composed from it: with
    # CRMPI_FULL_EVERY=2, epoch 3 is the first one composed.
    'compose-read':        ('@1#1', 'ckpt', 'index', 'async', 'CRMPI_FULL_EVERY=2'),
}
# Points without a mode run in synchronous mode (CRMPI_CKPT_MODE=sync),
# where the Nth checkpoint call writes and commits epoch N: the expectations
# N-1/N above hold there.
SETUP_KILL = 'mpi-quiesced@3#1'     # restore phase: epochs 1 and 2 committed
RESTORED = re.compile(r'restored checkpoint epoch (\d+)')


def table(top):
    with open(os.path.join(top, 'src/common/fault_points.def')) as f:
        return re.findall(r'^\s*CR_FAULT_POINT\(\s*"([^"]+)"', f.read(), re.M)


class Fail(Exception):
    pass


def run(cmd, cwd, fault=None, log=None):
    env = dict(os.environ)
    for k in ('CRMPI_FAULT', 'CRMPI_LOG'):
        env.pop(k, None)
    if fault:
        env['CRMPI_FAULT'] = fault
    if log:
        env['CRMPI_LOG'] = log
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    return p.returncode, p.stdout, p.stderr


def must_die(cmd, cwd, fault):
    rc, out, err = run(cmd, cwd, fault)
    if rc == 0:
        raise Fail('run with CRMPI_FAULT=%s finished: the point was never reached' % fault)
    if 'fault point' not in err and 'SIGKILL' not in err and 'signal 9' not in err \
            and 'Killed' not in err and 'killed' not in err:
        raise Fail('run with CRMPI_FAULT=%s exited %d without being killed:\n%s'
                   % (fault, rc, err[-1500:]))


def newest(tool, ckpt):
    """Newest committed epoch named by the index (0: none); verified."""
    if not os.path.isdir(ckpt):
        return 0
    p = subprocess.run([tool, 'list', ckpt], capture_output=True, text=True)
    if p.returncode != 0:
        raise Fail('crmpi-ckpt list %s exited %d: %s' % (ckpt, p.returncode, p.stderr))
    eps = [int(l.split()[0]) for l in p.stdout.splitlines()
           if l.split() and l.split()[0].isdigit() and 'committed' in l.split()]
    if not eps:
        return 0
    v = subprocess.run([tool, 'verify', ckpt], capture_output=True, text=True)
    if v.returncode != 0:
        raise Fail('newest committed epoch %d does not verify:\n%s' % (max(eps), v.stdout))
    return max(eps)


def restart(cmd, cwd, ref, want, np):
    """Restart without a fault: restored epoch `want` on every rank (0: fresh)."""
    rc, out, err = run(cmd, cwd, log='info')
    if rc != 0:
        raise Fail('restart exited %d:\n%s' % (rc, err[-2000:]))
    got = [int(x) for x in RESTORED.findall(err)]
    if want == 0 and got:
        raise Fail('restart restored epoch(s) %s, a fresh start was expected' % got)
    if want and (len(got) != np or set(got) != {want}):
        raise Fail('restart restored epochs %s on %d ranks, expected epoch %d on every rank'
                   % (got, np, want))
    if out != ref:
        raise Fail('answers differ: reference %r, restarted %r' % (ref, out))


def one(point, case, cmd, work, tool, ref, np):
    spec, phase, expect = case[:3]
    cmd = ['env', 'CRMPI_CKPT_MODE=' + (case[3] if len(case) > 3 else 'sync')] + \
        list(case[4:]) + cmd
    work = os.path.join(work, point)
    os.makedirs(work, exist_ok=True)
    ckpt = os.path.join(work, 'crmpi-ckpt')
    shutil.rmtree(ckpt, ignore_errors=True)
    m = re.match(r'@(\d+)', spec)
    n = int(m.group(1)) if m else 0
    fault = point + spec
    if phase == 'ckpt':
        must_die(cmd, work, fault)
        e = newest(tool, ckpt)
        want = {'N-1': n - 1, 'N': n, 'index': e}[expect]
        if e != want:
            raise Fail('after the kill the newest committed epoch is %d, expected %d' % (e, want))
    elif phase == 'restore':
        must_die(cmd, work, SETUP_KILL)
        e = newest(tool, ckpt)
        if e < 1:
            raise Fail('setup kill %s left no committed epoch' % SETUP_KILL)
        must_die(cmd, work, fault)
        if newest(tool, ckpt) != e:
            raise Fail('a kill while restoring changed the newest committed epoch')
        want = e
    elif phase == 'finish':
        must_die(cmd, work, fault)
        e = newest(tool, ckpt)
        want = e if expect == 'end' else 0
        if expect == 'end' and e < 1:
            raise Fail('no committed epoch after a complete run')
    else:  # rerun
        rc, out, err = run(cmd, work)
        if rc != 0 or out != ref:
            raise Fail('the first complete run exited %d with %r' % (rc, out))
        must_die(cmd, work, fault)
        want = 0
    restart(cmd, work, ref, want, np)
    return want


def main(argv):
    only, jobs = None, 3
    while len(argv) > 2 and argv[1] in ('--only', '--jobs'):
        if argv[1] == '--only':
            only = set(argv[2].split(','))
        else:
            jobs = int(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 6 or argv[4] != '--':
        sys.exit(__doc__)
    top, work, tool, cmd = argv[1], argv[2], argv[3], argv[5:]
    np = int(cmd[cmd.index('-np') + 1])
    points = table(top)
    missing = sorted(set(points) - set(CASES))
    extra = sorted(set(CASES) - set(points))
    if missing or extra:
        print('fault_points: FAIL no case for %s; cases for unknown points %s' % (missing, extra))
        return 1
    if only:
        points = [p for p in points if p in only]
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, 'crmpi-ckpt'), ignore_errors=True)
    rc, ref, err = run(cmd, work)
    if rc != 0 or not ref:
        print('fault_points: FAIL reference run exited %d\n%s' % (rc, err[-2000:]))
        return 1
    t0 = time.time()

    def test(p):
        t = time.time()
        try:
            e = one(p, CASES[p], cmd, work, tool, ref, np)
            print('fault_points: %-20s %-8s ok  (restart from %s, %.1f s)' %
                  (p, CASES[p][1], 'epoch %d' % e if e else 'the beginning', time.time() - t),
                  flush=True)
            return None
        except (Fail, subprocess.TimeoutExpired) as x:
            print('fault_points: %-20s %-8s FAILED: %s' % (p, CASES[p][1], x), flush=True)
            return p

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        failed = [p for p in pool.map(test, points) if p]
    if failed:
        print('fault_points: FAIL at %s' % ', '.join(failed))
        return 1
    print('fault_points: PASS %d points, %.0f s, answer %s' %
          (len(points), time.time() - t0, ref.strip()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
