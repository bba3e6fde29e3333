#!/usr/bin/env python3
"""async_faults.py - the background writer of asynchronous checkpoints
facing a crash or a failing disk.

    async_faults.py PROG WORKDIR        (PROG: tests/exec/kill_iter)

kill: for each point of the writer's job (CRMPI_FAULT=POINT@N: the Nth put
  of an extent by the writer, the end of its fsync, the index write it
  publishes for the previous epoch, a store pwrite), the program is killed
  there - on the writer thread, while the application computes. The newest
  epoch file on disk is then one the index does not name (it was being
  written); the restart must resume from the newest *committed* epoch (older
  than that file: the log says which) and finish with the output of an
  uninterrupted run.
eio: the writer's pwrite fails with EIO (CRMPI_FAULT=store-pwrite@N:eio).
  The failure must be returned by the checkpoint call that commits (kill_iter
  "tolerate" counts it and goes on), later checkpoints must succeed again
  (the next epoch is full), and the output must equal the uninterrupted run.
Runs in the mode given by CRMPI_CKPT_MODE (default async). Prints
"async_faults: PASS" or "async_faults: FAIL ..." last.
"""
import os
import re
import shutil
import subprocess
import sys

ARGS = ["300", "4096"]
KILLS = ["writer-put@40", "writer-finished@25", "index-written@30", "epoch-put@50"]


def fail(msg):
    print("async_faults: FAIL " + msg)
    sys.exit(1)


def run(prog, wd, args=ARGS, fault=None, log=None, extra=None):
    env = dict(os.environ, **(extra or {}))
    env.pop("CRMPI_FAULT", None)
    env["CRMPI_DIR"] = os.path.join(wd, "ckpt")
    if fault:
        env["CRMPI_FAULT"] = fault
    if log:
        env["CRMPI_LOG"] = log
    p = subprocess.run([prog] + args, cwd=wd, env=env, capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def epoch_files(wd):
    d = os.path.join(wd, "ckpt")
    return sorted(int(m.group(1)) for f in os.listdir(d)
                  for m in [re.match(r"epoch-(\d{12})\.h5$", f)] if m)


def fresh(wd):
    shutil.rmtree(os.path.join(wd, "ckpt"), ignore_errors=True)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    prog, wd = os.path.abspath(argv[0]), argv[1]
    os.makedirs(wd, exist_ok=True)
    fresh(wd)
    rc, ref, err = run(prog, wd)
    if rc != 0 or not ref:
        fail("reference run exited %d: %s" % (rc, err[-1000:]))
    sync = os.environ.get("CRMPI_CKPT_MODE", "async") == "sync"
    for point in KILLS:
        if sync and point.startswith("writer-"):
            continue                 # no writer thread in sync mode
        fresh(wd)
        rc, out, err = run(prog, wd, fault=point)
        if rc != -9:
            fail("run with CRMPI_FAULT=%s exited %d, not killed: %s" % (point, rc, err[-500:]))
        files = epoch_files(wd)
        rc, out, err = run(prog, wd, log="info")
        m = re.search(r"restored checkpoint epoch (\d+)", err)
        if rc != 0 or out != ref:
            fail("restart after a kill at %s: exit %d, output %r (want %r)\n%s"
                 % (point, rc, out, ref, err[-1500:]))
        if not m:
            fail("restart after a kill at %s did not restore a checkpoint" % point)
        got = int(m.group(1))
        if files and got >= files[-1]:
            fail("kill at %s: restored epoch %d, but epoch %d was still being written"
                 % (point, got, files[-1]))
        print("async_faults: killed at %s; epoch files up to %d on disk, restarted from "
              "committed epoch %d" % (point, files[-1] if files else 0, got))
    fresh(wd)
    rc, out, err = run(prog, wd, args=ARGS + ["tolerate"], fault="store-pwrite@60:eio")
    m = re.search(r"(\d+) checkpoint failures", err)
    if rc != 0 or out != ref:
        fail("run with a failing pwrite: exit %d, output %r (want %r)\n%s"
             % (rc, out, ref, err[-1500:]))
    if not m or int(m.group(1)) != 1:
        fail("the failing pwrite was not reported exactly once by a checkpoint:\n" + err[-1500:])
    if "Input/output error" not in err:
        fail("the report does not name the error:\n" + err[-1500:])
    print("async_faults: an EIO of the writer was reported once and the job went on")
    if sync:
        print("async_faults: PASS")
        return
    # A full epoch composed from the previous chain (CRMPI_FULL_EVERY=2:
    # every other one) whose chain cannot be read: the epoch fails, the
    # checkpoint that commits it says so once, the next full epoch is
    # written from memory, and nothing is lost.
    fresh(wd)
    rc, out, err = run(prog, wd, args=ARGS + ["tolerate"], fault="compose-read@5:eio",
                       log="debug", extra={"CRMPI_FULL_EVERY": "2"})
    m = re.search(r"(\d+) checkpoint failures", err)
    if rc != 0 or out != ref:
        fail("run with a failing chain read: exit %d, output %r (want %r)\n%s"
             % (rc, out, ref, err[-1500:]))
    if not m or int(m.group(1)) != 1:
        fail("the failing chain read was not reported exactly once:\n" + err[-1500:])
    if "composing a full checkpoint epoch" not in err or "Input/output error" not in err:
        fail("the report does not name the composed epoch and the error:\n" + err[-1500:])
    after = err[err.index("composing a full checkpoint epoch"):]
    if not re.search(r"checkpoint staged: .*, full, blocked", after):
        fail("no full epoch from memory followed the failed composed one:\n" + after[:3000])
    print("async_faults: a composed full epoch whose chain read failed was reported once, "
          "the next full epoch was written from memory, and the job went on")
    print("async_faults: PASS")


if __name__ == "__main__":
    main(sys.argv[1:])
