#!/usr/bin/env python3
"""soak.py - many ranks, many checkpoints, random kills of random ranks.

Usage: soak.py [options] -- MPIEXEC... -np N SOAK_APP STEPS SEED

1. Reference: the job runs once with CRMPI_DISABLE=1 (checkpoints are
   no-ops); its one-line answer must say bad=0.
2. Soak: the job runs with checkpoints on (CRMPI_LOG=error) in a fresh
   directory. While it runs, every --poll seconds the RSS of every rank and
   the number of files in the checkpoint directory are sampled; a random
   delay (uniform in [--min-delay, --max-delay]) after the run's first
   checkpoint (so that every run makes progress), or with --after-ckpts
   after a random number of the run's checkpoints, one random rank is
   SIGKILLed, mpirun is given --grace seconds to take the others down, and the
   job is started again with the same command. Once --kills kills happened
   the job runs to its end.
3. Checks: the final answer equals the reference (so no message was lost,
   duplicated or corrupted: the application checks every payload), the
   largest RSS of any rank stays under --max-rss-mib, the checkpoint
   directory never holds more than --max-files files (garbage collection
   works: CRMPI_KEEP committed epochs, their chains of at most
   CRMPI_FULL_EVERY epochs, one epoch being written, one left by a killed
   writer, the index and its temporary), and the final run's last
   checkpoint (rank 0 reports each) is epoch STEPS or later: one committed
   epoch per step.
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
                   help='default: CRMPI_FULL_EVERY + CRMPI_KEEP + 4')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--app', default='soak_app', help='command name of a rank')
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.cmd[:1] == ['--']:
        a.cmd = a.cmd[1:]
    if not a.cmd:
        p.error('no command')
    return a


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
    max_files = a.max_files or full_every + keep + 4
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
    max_rss = max_nfiles = 0
    max_names = []
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
            while p.poll() is None:
                time.sleep(a.poll)
                if deadline is None and kills < a.kills:
                    err.seek(0)
                    seen = err.read().count('soak: checkpoint epoch')
                    if a.after_ckpts and want is None:
                        want = rnd.randint(*a.after_ckpts)
                    if a.after_ckpts and seen >= want:
                        deadline = time.time() + rnd.uniform(0, a.max_delay)
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
    nsteps = int(a.cmd[-2])
    print('soak: %d runs, %d kills, %d checkpoints taken (%d distinct epochs, the last %d), '
          '%.0f s, max files %d (bound %d), max rank RSS %.1f MiB (bound %.0f)' %
          (runs, kills, ckpts, len(epochs), last_epoch, dt, max_nfiles, max_files,
           max_rss / 1024.0, a.max_rss_mib))
    print('soak: final %s' % final.strip())
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
    if max_rss > a.max_rss_mib * 1024:
        bad.append('a rank reached %.1f MiB' % (max_rss / 1024.0))
    if bad:
        print('soak: FAIL ' + '; '.join(bad))
        return 1
    print('soak: PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
