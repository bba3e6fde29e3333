#!/usr/bin/env python3
"""killrun.py - run a command, SIGKILL it at random moments, restart it until
it finishes, and check that its final output equals an uninterrupted run.

    killrun.py [options] -- COMMAND [ARGS...]

1. Reference: COMMAND runs once, uninterrupted (after --clean paths are
   removed); its stdout is the reference, and it must exit 0.
2. Kill rounds: COMMAND is started again and again. Each run is SIGKILLed
   after a random delay drawn uniformly from [--min-delay, --max-delay]
   seconds; the next run is expected to resume from the last checkpoint.
   The window never reaches past the reference run's duration: a delay
   longer than the whole program kills nothing, and a test whose program
   got faster than its window would silently stop killing (the upper bound
   becomes that duration and the lower one at most half of it; the PASS
   line reports the window used and where the kills fell). A
   round ends when a run exits 0 by itself: its stdout must equal the
   reference byte for byte. The checkpoint directory is *not* cleaned between
   the reference and the first round, nor between rounds: a program that
   exits normally must leave it so that the next start is a fresh one (this
   is crmpi's contract). Rounds repeat until at least --kills kills happened;
   once they have, the current round's last run goes undisturbed to its end.
3. A run that exits non-zero (or by a signal) without having been killed by
   us, or that outlives --timeout, is a failure.

What gets killed (--target):
    launched          the launched process (default)
    group             the launched process's whole process group
    child:NAME        one random descendant whose command name is NAME (e.g.
                      one MPI rank under mpirun); the launcher is then given
                      --grace seconds to exit by itself before its group is
                      killed. The delay counts from the moment the first
                      such descendant exists (the launcher's own start-up
                      is not the program's), in the reference run too.

Everything random comes from --seed, so a failure can be replayed.
The last line printed is a summary: "killrun: PASS ..." or "killrun: FAIL ...".
Exit status 0 on PASS, 1 on FAIL, 2 on usage errors.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20, help="minimum number of kills (default 20)")
    p.add_argument("--min-delay", type=float, default=0.05, help="seconds (default 0.05)")
    p.add_argument("--max-delay", type=float, default=0.5, help="seconds (default 0.5)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from time, printed)")
    p.add_argument("--target", default="launched", help="launched | group | child:NAME")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds the launcher may take to exit after a child was killed")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per run (default 120)")
    p.add_argument("--max-runs", type=int, default=1000, help="give up after this many runs")
    p.add_argument("--clean", action="append", default=[], metavar="PATH",
                   help="remove PATH before the reference run (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="extra environment for every run (repeatable)")
    p.add_argument("--ref-env", action="append", default=[], metavar="K=V",
                   help="extra environment for the reference run only")
    p.add_argument("--cwd", default=None, help="working directory of the runs (created if missing)")
    p.add_argument("--keep-output", default=None, metavar="DIR",
                   help="keep every run's stdout/stderr in DIR")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.command and a.command[0] == "--":
        a.command = a.command[1:]
    if not a.command:
        p.error("no command given (put it after --)")
    if a.min_delay < 0 or a.max_delay < a.min_delay:
        p.error("need 0 <= --min-delay <= --max-delay")
    if not (a.target in ("launched", "group") or a.target.startswith("child:")):
        p.error("--target must be launched, group or child:NAME")
    return a


def env_with(pairs):
    env = dict(os.environ)
    for kv in pairs:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit("killrun: --env needs K=V, got %r" % kv)
        env[k] = v
    return env


def descendants(pid):
    """All descendant pids of pid, from /proc/*/stat parent links."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        parent[int(d)] = int(rest[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


class Runner:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.env = env_with(a.env)
        self.tmp = tempfile.mkdtemp(prefix="killrun-")
        self.nrun = 0

    def log(self, msg):
        if self.a.verbose:
            print("killrun: " + msg, file=sys.stderr, flush=True)

    def start(self, env):
        self.nrun += 1
        out = open(os.path.join(self.tmp, "run%d.out" % self.nrun), "w+b")
        err = open(os.path.join(self.tmp, "run%d.err" % self.nrun), "w+b")
        proc = subprocess.Popen(self.a.command, stdout=out, stderr=err, env=env,
                                cwd=self.a.cwd, start_new_session=True)
        return proc, out, err

    def finish_files(self, out, err):
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
        out.close()
        err.close()
        if self.a.keep_output:
            os.makedirs(self.a.keep_output, exist_ok=True)
            for name, data in (("out", o), ("err", e)):
                with open(os.path.join(self.a.keep_output, "run%d.%s" % (self.nrun, name)), "wb") as f:
                    f.write(data)
        return o, e

    def kill_group(self, proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def kill_target(self, proc):
        """SIGKILL what --target names; returns a description or None if
        there was nothing to kill (the process is gone already)."""
        t = self.a.target
        if t == "launched":
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            proc.wait()
            return "pid %d" % proc.pid
        if t == "group":
            self.kill_group(proc)
            return "group %d" % proc.pid
        name = t.split(":", 1)[1]
        kids = [p for p in descendants(proc.pid) if comm(p) == name]
        if not kids:
            return None
        victim = self.rng.choice(sorted(kids))
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return None
        try:
            proc.wait(timeout=self.a.grace)
        except subprocess.TimeoutExpired:
            self.log("launcher still alive %.1fs after the kill; killing its group" % self.a.grace)
        self.kill_group(proc)
        return "%s pid %d" % (name, victim)

    def target_name(self):
        t = self.a.target
        return t.split(":", 1)[1] if t.startswith("child:") else None

    def wait_target(self, proc, deadline):
        """For a child:NAME target, poll until a descendant NAME exists, the
        launcher exits or deadline passes; returns the moment it was seen
        (or now). For other targets the launched process is the target."""
        name = self.target_name()
        while name is not None and time.monotonic() < deadline and proc.poll() is None:
            if any(comm(p) == name for p in descendants(proc.pid)):
                break
            time.sleep(0.005)
        return time.monotonic()

    def run_to_end(self, env, what, timed=False):
        """Run to completion; with timed, also return the seconds from the
        target's appearance to the exit (the span kills can land in)."""
        proc, out, err = self.start(env)
        t0 = time.monotonic()
        if timed:
            t0 = self.wait_target(proc, t0 + self.a.timeout)
        try:
            rc = proc.wait(timeout=self.a.timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(proc)
            o, e = self.finish_files(out, err)
            raise Failure("%s: no exit after %.0fs" % (what, self.a.timeout), e)
        span = time.monotonic() - t0
        o, e = self.finish_files(out, err)
        return (rc, o, e, span) if timed else (rc, o, e)

    def killed_run(self, lo, hi):
        """One run with a kill after a random delay in [lo, hi] seconds from
        the target's appearance. Returns (killed, delay, rc, out, err)."""
        delay = self.rng.uniform(lo, hi)
        proc, out, err = self.start(self.env)
        deadline = self.wait_target(proc, time.monotonic() + self.a.timeout) + delay
        rc = None
        while rc is None and time.monotonic() < deadline:
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
            rc = proc.poll()
        killed = None
        if rc is None:
            killed = self.kill_target(proc)
            rc = proc.wait()
        o, e = self.finish_files(out, err)
        if killed:
            self.log("run %d: killed %s after %.3fs" % (self.nrun, killed, delay))
        else:
            self.log("run %d: exited %d before the kill (%.3fs)" % (self.nrun, rc, delay))
        return killed, delay, rc, o, e


class Failure(Exception):
    def __init__(self, msg, stderr=b""):
        super().__init__(msg)
        self.stderr = stderr


def main(argv):
    a = parse_args(argv)
    if a.seed is None:
        a.seed = int(time.time() * 1000) % 1000000007
    r = Runner(a)
    t0 = time.monotonic()
    kills = rounds = 0
    try:
        if a.cwd:
            os.makedirs(a.cwd, exist_ok=True)
        for path in a.clean:
            shutil.rmtree(path, ignore_errors=True)
        rc, ref, e, span = r.run_to_end(env_with(a.env + a.ref_env), "reference run", timed=True)
        if rc != 0:
            raise Failure("reference run exited with status %d" % rc, e)
        hi = min(a.max_delay, span)
        lo = min(a.min_delay, hi / 2)
        r.log("reference: %d bytes of output, %.3fs; kill window [%.3f, %.3f]s"
              % (len(ref), span, lo, hi))
        delays = []
        while kills < a.kills or rounds == 0:
            round_kills = 0
            while True:
                if r.nrun > a.max_runs:
                    raise Failure("gave up after %d runs" % r.nrun)
                if kills >= a.kills:
                    # enough kills: let this round finish undisturbed
                    killed = None
                    rc, o, e = r.run_to_end(r.env, "run %d" % (r.nrun + 1))
                else:
                    killed, delay, rc, o, e = r.killed_run(lo, hi)
                if killed:
                    delays.append(delay)
                    kills += 1
                    round_kills += 1
                    continue
                if rc != 0:
                    raise Failure("run %d exited with status %d without being killed" % (r.nrun, rc), e)
                break
            rounds += 1
            if o != ref:
                with open(os.path.join(r.tmp, "ref.out"), "wb") as f:
                    f.write(ref)
                raise Failure("round %d (%d kills): output differs from the reference "
                              "(see %s/run%d.out vs ref.out)" % (rounds, round_kills, r.tmp, r.nrun), e)
            r.log("round %d: %d kills, output equal" % (rounds, round_kills))
    except Failure as f:
        sys.stderr.write(f.stderr.decode(errors="replace")[-4000:])
        print("killrun: FAIL %s (kills=%d runs=%d seed=%d cmd=%s)"
              % (f, kills, r.nrun, a.seed, " ".join(a.command)), flush=True)
        return 1
    shutil.rmtree(r.tmp, ignore_errors=True)
    delays.sort()
    print("killrun: PASS kills=%d runs=%d rounds=%d seed=%d elapsed=%.1fs "
          "reference=%.2fs window=[%.2f,%.2f]s kills at %.2f/%.2f/%.2fs (min/median/max) cmd=%s"
          % (kills, r.nrun, rounds, a.seed, time.monotonic() - t0, span, lo, hi,
             delays[0] if delays else 0, delays[len(delays) // 2] if delays else 0,
             delays[-1] if delays else 0, " ".join(a.command)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
