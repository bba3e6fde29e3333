#!/usr/bin/env python3
"""soak.py - many ranks, many checkpoints, random kills of random ranks.

Usage: soak.py [options] -- MPIEXEC... -np N SOAK_APP STEPS SEED

The full size of issue #9 (16 ranks oversubscribed on 2 cores, 200
checkpoints, 12 kills; about 2 minutes on an idle 2-core machine):

  tests/mpi/soak.py --workdir /tmp/soak --kills 12 --after-ckpts 3 14 -- \
      mpirun --oversubscribe -np 16 $PWD/build/tests/mpi/soak_app 200 7

(from the top of the source tree; the job runs in --workdir, hence $PWD; as
root add --allow-run-as-root; CTest's mpi_soak_np8 is the small size).

1. Reference: the job runs once with CRMPI_DISABLE=1 (checkpoints are
   no-ops); its one-line answer must say bad=0.
2. Soak: the job runs with checkpoints on (CRMPI_LOG=error) in a fresh
   directory. While it runs, every --poll seconds the RSS of every rank and
   the files in the checkpoint directory are sampled. One random rank is
   SIGKILLed a random delay (uniform in [--min-delay, --max-delay]) after
   the run's first checkpoint (so that every run makes progress), or with
   --after-ckpts LO HI after a random number in [LO, HI] of the run's
   checkpoints plus a random part of one step (the mean time between this
   run's checkpoints, at most --max-delay), so that kills land anywhere in
   a step (drain, write, compute) and cost a known number of steps; mpirun
   is given --grace seconds to take the others down, and the job is started
   again with the same command. Once --kills kills happened the job runs to
   its end. A killed run advances the job by at most HI + 2 checkpoints (HI,
   the part of a step, one of polling), so KILLS * (HI + 2) <= STEPS is
   required: every kill then comes before the job ends.
3. Checks: the final answer equals the reference (so no message was lost,
   duplicated or corrupted: the application checks every payload), the
   largest RSS of any rank stays under --max-rss-mib, the checkpoint
   directory stays within the bounds that file_bounds() derives from
   CRMPI_FULL_EVERY, CRMPI_KEEP, CRMPI_CKPT_MODE and the number of ranks
   (garbage collection works; no file name crmpi does not know of), it
   holds no temporary, no lock probe and no uncommitted epoch beyond the
   last one's at the end, and the final run's last checkpoint (rank 0
   reports each) is epoch STEPS or later: one committed epoch per step.
Prints the figures and "soak: PASS" or "soak: FAIL".
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time


def args(argv):
    p = argparse.ArgumentParser()
    p.add_argument('--workdir', required=True)
    p.add_argument('--kills', type=int, default=3)
    p.add_argument('--min-delay', type=float, default=3.0)
    p.add_argument('--max-delay', type=float, default=10.0)
    p.add_argument('--after-ckpts', type=int, nargs=2, metavar=('LO', 'HI'),
                   help='kill after a random number in [LO, HI] of this run\'s checkpoints '
                        '(plus up to --max-delay seconds) instead of after a delay from '
                        'its first: independent of how fast the machine is')
    p.add_argument('--grace', type=float, default=15.0)
    p.add_argument('--poll', type=float, default=0.25)
    p.add_argument('--timeout', type=float, default=3600.0, help='seconds for the whole soak')
    p.add_argument('--max-rss-mib', type=float, default=256.0)
    p.add_argument('--max-files', type=int, default=0,
                   help='bound on all files at once; default: derived (file_bounds)')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--app', default='soak_app', help='command name of a rank')
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.cmd[:1] == ['--']:
        a.cmd = a.cmd[1:]
    if not a.cmd:
        p.error('no command')
    return a


EPOCH = re.compile(r'epoch-\d{12}\.h5$')
PROBE = re.compile(r'epoch-\d{12}\.h5\.(locktest\.\d+|layout|layout\.tmp)$')
OTHER = ('index', 'index.tmp', 'crmpi-job.last', 'crmpi-job.last.tmp', 'finished')


def file_bounds(full_every, keep, async_mode, nranks):
    """Most files of each kind the checkpoint directory can hold at once.

    Epoch files. The index keeps the newest KEEP committed epochs and the
    chains they need (store.c gc_mark). An incremental epoch's parent is the
    epoch committed just before it, so the newest KEEP - 1 entries each
    chain onto the next older one and add one file each to the chain of the
    oldest kept entry, which is at most FULL_EVERY long (cr_store_next_is_full):
    an index names at most FULL_EVERY + KEEP - 1 epochs. The index naming
    epoch E replaces the one naming E - 1 and only then are the files it no
    longer names deleted, so until that sweep ends the files of both are
    there: at most FULL_EVERY + KEEP - 1 named by the older index, plus E.
    In async mode (the default) E is committed at checkpoint E + 1, which
    creates file E + 1 first; the writer publishes the index naming E and
    sweeps before it writes E + 1, and checkpoint E + 2 waits for that: one
    more file. A killed run's unpublished epochs and unfinished sweep are
    deleted when the next run opens the directory, before it creates an
    epoch file (store.c), so kills add none.

    Other files, one each: index and index.tmp (while the index is
    replaced), crmpi-job.last and crmpi-job.last.tmp (jobctl.c, the
    launcher's record, rewritten by rank 0 after each checkpoint while its
    writer thread may be replacing the index), finished (the last run's
    normal end).
    Transient files beside an epoch file ("probes", swept if a kill leaves
    one): while an epoch file is created collectively, Open MPI's MPI-IO has
    every rank create and unlink "<epoch file>.locktest.<rank>" (at most one
    per rank); when rank 0's layout helper creates it instead (the default),
    rank 0 publishes "<epoch file>.layout" by renaming "<...>.layout.tmp"
    and deletes it when that epoch is committed, before the next one is
    laid out (at most 2).
    """
    epochs = full_every + keep - 1 + (2 if async_mode else 1)
    return {'epochs': epochs, 'probes': nranks + 2,
            'all': epochs + len(OTHER) + nranks + 2}


def classify(names):
    """(epoch files, transient files beside them, names crmpi does not write)."""
    epochs = [n for n in names if EPOCH.match(n)]
    probes = [n for n in names if PROBE.match(n)]
    unknown = [n for n in names if not (EPOCH.match(n) or PROBE.match(n) or n in OTHER)]
    return epochs, probes, unknown


def children(root):
    """pid -> comm of every descendant of root."""
    kids, comm = {}, {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                s = f.read()
        except OSError:
            continue
        c = s[s.index('(') + 1:s.rindex(')')]
        ppid = int(s[s.rindex(')') + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
        comm[int(d)] = c
    out, todo = {}, [root]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out[k] = comm[k]
            todo.append(k)
    return out


def rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv):
    a = args(argv)
    seed = a.seed if a.seed is not None else int(time.time())
    rnd = random.Random(seed)
    ckpt = os.path.join(a.workdir, 'crmpi-ckpt')
    os.makedirs(a.workdir, exist_ok=True)
    shutil.rmtree(ckpt, ignore_errors=True)
    base = dict(os.environ)
    base.pop('CRMPI_FAULT', None)
    full_every = int(base.get('CRMPI_FULL_EVERY', '8'))
    keep = int(base.get('CRMPI_KEEP', '2'))
    async_mode = base.get('CRMPI_CKPT_MODE', 'async') != 'sync'
    try:
        nranks = int(a.cmd[a.cmd.index('-np') + 1])
        nsteps = int(a.cmd[-2])
    except (ValueError, IndexError):
        print('soak: FAIL the command needs -np N and ends with STEPS SEED')
        return 2
    bounds = file_bounds(full_every, keep, async_mode, nranks)
    max_files = a.max_files or bounds['all']
    if a.after_ckpts and a.kills * (a.after_ckpts[1] + 2) > nsteps:
        print('soak: FAIL %d kills after up to %d checkpoints each need %d steps, the job '
              'has %d: lower --after-ckpts HI or --kills' %
              (a.kills, a.after_ckpts[1], a.kills * (a.after_ckpts[1] + 2), nsteps))
        return 2
    print('soak: seed %d, %s' % (seed, ' '.join(a.cmd)), flush=True)

    t0 = time.time()
    env = dict(base, CRMPI_DISABLE='1', CRMPI_DIR=os.path.join(a.workdir, 'ref-ckpt'))
    ref = subprocess.run(a.cmd, cwd=a.workdir, env=env, capture_output=True, text=True,
                         timeout=a.timeout)
    if ref.returncode != 0 or ' bad=0 ' not in ref.stdout:
        print('soak: FAIL reference run exited %d: %s\n%s' %
              (ref.returncode, ref.stdout, ref.stderr[-2000:]))
        return 1
    print('soak: reference %s (%.1f s)' % (ref.stdout.strip(), time.time() - t0), flush=True)

    env = dict(base, CRMPI_LOG='error', CRMPI_DIR=ckpt)
    kills = runs = ckpts = last_epoch = 0
    epochs = set()
    max_rss = max_nfiles = max_epochs = max_probes = 0
    max_names = []
    strays = set()
    final = None
    t0 = time.time()
    while final is None:
        if time.time() - t0 > a.timeout:
            print('soak: FAIL timeout after %d runs' % runs)
            return 1
        runs += 1
        errpath = os.path.join(a.workdir, 'run%d.err' % runs)
        with open(errpath, 'w+') as err:
            p = subprocess.Popen(a.cmd, cwd=a.workdir, env=env, stdout=subprocess.PIPE,
                                 stderr=err, text=True, start_new_session=True)
            # The kill timer starts at this run's first checkpoint, so every
            # run makes progress however long the restart takes.
            deadline = None
            want = None
            killed = None
            run_rss = 0
            seen_at = []             # when each checkpoint line was first seen
            while p.poll() is None:
                time.sleep(a.poll)
                if deadline is None and kills < a.kills:
                    err.seek(0)
                    seen = err.read().count('soak: checkpoint epoch')
                    seen_at += [time.time()] * (seen - len(seen_at))
                    if a.after_ckpts and want is None:
                        want = rnd.randint(*a.after_ckpts)
                    if a.after_ckpts and seen >= want:
                        # A random part of one step (from the second line on:
                        # the first includes the restart).
                        step = ((seen_at[-1] - seen_at[1]) / (len(seen_at) - 2)
                                if len(seen_at) > 2 else a.max_delay)
                        deadline = time.time() + rnd.uniform(0, min(step, a.max_delay))
                    elif not a.after_ckpts and seen:
                        deadline = time.time() + rnd.uniform(a.min_delay, a.max_delay)
                ranks = [pid for pid, c in children(p.pid).items() if c == a.app]
                for pid in ranks:
                    run_rss = max(run_rss, rss_kib(pid))
                max_rss = max(max_rss, run_rss)
                try:
                    names = os.listdir(ckpt)
                    if len(names) > max_nfiles:
                        max_nfiles, max_names = len(names), sorted(names)
                    ep, pr, unknown = classify(names)
                    max_epochs = max(max_epochs, len(ep))
                    max_probes = max(max_probes, len(pr))
                    strays.update(unknown)
                except OSError:
                    pass
                if deadline and time.time() >= deadline and ranks and killed is None:
                    victim = rnd.choice(ranks)
                    try:
                        os.kill(victim, signal.SIGKILL)
                        killed = time.time()
                        kills += 1
                    except ProcessLookupError:
                        deadline = time.time() + 0.5
                if killed and time.time() - killed > a.grace:
                    os.killpg(p.pid, signal.SIGKILL)
            out = p.stdout.read()
            err.seek(0)
            errtext = err.read()
        run_epochs = [int(e) for e in re.findall(r'soak: checkpoint epoch (\d+)', errtext)]
        ckpts += len(run_epochs)
        epochs.update(run_epochs)
        last_epoch = run_epochs[-1] if run_epochs else last_epoch
        if killed:
            print('soak: run %d: killed a rank after %d checkpoints in all (%.0f s), '
                  'peak rank RSS %.1f MiB' % (runs, ckpts, time.time() - t0, run_rss / 1024.0),
                  flush=True)
            continue
        if p.returncode != 0:
            print('soak: FAIL run %d exited %d without a kill:\n%s' %
                  (runs, p.returncode, errtext[-3000:]))
            return 1
        final = out
    dt = time.time() - t0
    print('soak: %d runs, %d kills, %d checkpoints taken (%d distinct epochs, the last %d), '
          '%.0f s, max files %d (bound %d; epoch files %d, bound %d; transient files %d, '
          'bound %d), max rank RSS %.1f MiB (bound %.0f)' %
          (runs, kills, ckpts, len(epochs), last_epoch, dt, max_nfiles, max_files,
           max_epochs, bounds['epochs'], max_probes, bounds['probes'],
           max_rss / 1024.0, a.max_rss_mib))
    print('soak: final %s' % final.strip())
    # At the end: the final run committed its last epoch completely (index
    # written, sweep started); the program's exit does not wait for the
    # sweep's helper thread, so the files of the index before it may remain
    # (one more than the index names, FULL_EVERY + KEEP at most). Nothing
    # temporary: what a kill left was swept when the final run opened the
    # directory.
    left = sorted(os.listdir(ckpt))
    ep, pr, unknown = classify(left)
    leftover = pr + unknown + [n for n in left if n.endswith('.tmp')]
    print('soak: left in the directory: %s' % ' '.join(left))
    bad = []
    if final != ref.stdout:
        bad.append('final answer %r differs from the reference %r' % (final, ref.stdout))
    if kills < a.kills:
        bad.append('only %d kills' % kills)
    # One epoch per step in the final timeline (a kill just after a commit
    # may keep rank 0 from reporting that epoch, so lines undercount). Rank 0
    # reports the last committed epoch; the application commits its last
    # checkpoint with crmpi_checkpoint_wait() before the answer.
    if last_epoch < nsteps:
        bad.append('the last checkpoint was epoch %d for %d steps' % (last_epoch, nsteps))
    if max_nfiles > max_files:
        bad.append('%d files in the checkpoint directory: %s' % (max_nfiles, ' '.join(max_names)))
    if max_epochs > bounds['epochs']:
        bad.append('%d epoch files at once (bound %d)' % (max_epochs, bounds['epochs']))
    if max_probes > bounds['probes']:
        bad.append('%d transient files (lock probes, layout records) at once (bound %d)' % (max_probes, bounds['probes']))
    if strays:
        bad.append('files crmpi does not write: %s' % ' '.join(sorted(strays)))
    if leftover or len(ep) > full_every + keep:
        bad.append('at the end %d epoch files (bound %d) and left over: %s' %
                   (len(ep), full_every + keep, ' '.join(leftover) or 'nothing'))
    if max_rss > a.max_rss_mib * 1024:
        bad.append('a rank reached %.1f MiB' % (max_rss / 1024.0))
    if bad:
        print('soak: FAIL ' + '; '.join(bad))
        return 1
    print('soak: PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
