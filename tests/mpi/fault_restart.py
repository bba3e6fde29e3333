#!/usr/bin/env python3
"""fault_restart.py - kill an MPI job at named points of a checkpoint (in the
drain, between drain and write, in the middle of writing the epoch, in the
middle of committing it), restart it each time, and check that the final
answer equals an uninterrupted run.

Usage: fault_restart.py [--queue-rank R] WORKDIR -- MPIEXEC... -np N APP ARGS...

--queue-rank: the rank killed with part of its drain queue filled (default
0; a scenario where only some ranks receive across a checkpoint, such as
kill_app inter, where the odd ranks do, names one of them).

The faults come from CRMPI_FAULT (mpi-wrap/protocol.h for the MPI layer's
points, src/store for the container's). Each faulty run must die (a run that
finishes means the point was never reached: failure); the last run has no
fault and must print exactly what the reference run printed. Before them,
runs where one rank's checkpoint fails with an injected error (ERRORS) must
finish with the reference answer, every rank having got the same status.
"""
import os
import shutil
import subprocess
import sys

FAULTS = [
    'mpi-quiesced@5#1',        # rank 1 dies after the 5th drain, before the write
    'mpi-drain-exchanged@2',   # counters exchanged, nothing queued yet
    'mpi-drain-queued@2#{queue_rank}',  # that rank dies with part of its queue filled
    'epoch-put',               # in the middle of writing the epoch's data
    'index-written',           # the new index written but not yet renamed
]
# The background writer's thread (async mode), while the application runs.
ASYNC_FAULTS = [
    'writer-put@7#1',          # rank 1's writer in the middle of an epoch
    'writer-finished@4#0',     # rank 0's epoch complete, commit not agreed
]
# A checkpoint failing on one rank only, the job going on (KILL_APP_TOLERATE:
# kill_app checks every rank got the same status): each run must finish with
# the reference answer and report exactly one failed checkpoint.
ERRORS = [
    'engine-collecting@3#1:eio',   # before begin's collectives: rank 1 alone fails
    'epoch-fsync@2#0:enospc',      # rank 0's part of the 2nd epoch not on disk
]
# The same first failure, then a kill three checkpoints later: the job is
# restarted from what was committed around the failure (the failed call
# began no epoch; the one after it is full) and, with the later kills, must
# still reach the reference answer (only the answer is checked).
ERROR_THEN_KILL = 'engine-collecting@3#1:eio,mpi-quiesced@6#0'


def run(cmd, cwd, fault=None):
    env = dict(os.environ)
    env['KILL_APP_TOLERATE'] = '1'
    env.pop('CRMPI_FAULT', None)
    if fault:
        env['CRMPI_FAULT'] = fault
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        # A rank left the others waiting in a collective, say.
        return -1, '', 'timed out after %d s (hung?)\n%s' % (e.timeout, str(e.stderr or ''))
    return p.returncode, p.stdout, p.stderr


def main(argv):
    queue_rank = 0
    if len(argv) > 2 and argv[1] == '--queue-rank':
        queue_rank = int(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 4 or argv[2] != '--':
        sys.exit(__doc__)
    work, cmd = argv[1], argv[3:]
    ckpt = os.path.join(work, 'crmpi-ckpt')
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(ckpt, ignore_errors=True)
    rc, ref, err = run(cmd, work)
    if rc != 0 or not ref:
        print('fault_restart: FAIL reference run exited %d\n%s' % (rc, err[-2000:]))
        return 1
    for f in ERRORS:
        shutil.rmtree(ckpt, ignore_errors=True)
        rc, out, err = run(cmd, work, f)
        nfail = err.count('checkpoint failed on every rank alike')
        if rc != 0 or out != ref or nfail != 1:
            print('fault_restart: FAIL with CRMPI_FAULT=%s: exit %d, %d failed checkpoints '
                  '(expected 1), answer %r (reference %r)\n%s'
                  % (f, rc, nfail, out, ref, err[-2000:]))
            return 1
        print('fault_restart: %s failed one checkpoint on every rank, job went on' % f)
    shutil.rmtree(ckpt, ignore_errors=True)
    faults = [ERROR_THEN_KILL] + [f.format(queue_rank=queue_rank) for f in FAULTS]
    if os.environ.get('CRMPI_CKPT_MODE', 'async') != 'sync':
        faults = faults + ASYNC_FAULTS
    for f in faults:
        rc, out, err = run(cmd, work, f)
        if rc == 0:
            print('fault_restart: FAIL run with CRMPI_FAULT=%s finished: point not reached' % f)
            return 1
        print('fault_restart: killed at %s (exit %d)' % (f, rc))
    rc, out, err = run(cmd, work)
    if rc != 0:
        print('fault_restart: FAIL final run exited %d\n%s' % (rc, err[-2000:]))
        return 1
    if out != ref:
        print('fault_restart: FAIL answers differ\n reference: %s final:     %s' % (ref, out))
        return 1
    print('fault_restart: PASS %d faults, answer %s' % (len(faults), out.strip()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
