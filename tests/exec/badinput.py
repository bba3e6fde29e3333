#!/usr/bin/env python3
"""badinput.py - a persistent program facing a checkpoint it must not or
cannot use as is.

    badinput.py mismatch PROG PROG_VARIANT WORKDIR
    badinput.py damaged  PROG WORKDIR
    badinput.py collision PROG WORKDIR
    badinput.py disabled PROG WORKDIR

mismatch: PROG is killed after it committed checkpoints; PROG_VARIANT (the
  same source built differently: another build-id) is installed at the same
  path and started. It must refuse with a message naming the directory and
  the reason, exit non-zero, print nothing on stdout, and leave the
  checkpoint intact: PROG put back resumes and finishes with the output of
  an uninterrupted run.
damaged: PROG is killed after it committed checkpoints; the page data of the
  newest committed epoch is overwritten (its /pages dataset, located through
  the epoch header, src/store/FORMAT.md). The restart must fall back to an
  older epoch and finish with the output of an uninterrupted run.
collision: CRMPI_REGION_BASE names an address already mapped (the
  executable's own): the region is not silently placed elsewhere; the start
  reports the collision, the program cannot allocate persistent memory (it
  exits non-zero by itself) and no checkpoint is written.
disabled: CRMPI_DISABLE=1 runs the program as if the library were absent:
  same output, no checkpoint directory created.
Prints "badinput: PASS ..." or "badinput: FAIL ..." last.
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

ARGS = ["600", "4096"]


def fail(msg):
    print("badinput: FAIL " + msg, flush=True)
    sys.exit(1)


def run(prog, wd, timeout=120, **extra):
    env = dict(os.environ, CRMPI_DIR=os.path.join(wd, "ckpt"))
    env.update(extra)
    p = subprocess.run([prog] + ARGS, cwd=wd, capture_output=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def committed(wd):
    try:
        with open(os.path.join(wd, "ckpt", "index"), "rb") as f:
            data = f.read()
    except OSError:
        return []
    return sorted(set(m.decode() for m in re.findall(rb"epoch-\d+\.h5", data)))


def run_and_kill(prog, wd, min_epochs=3):
    """Start prog and SIGKILL it once it committed min_epochs checkpoints of
    its own (the reference run's epochs and its "finished" mark are still
    in the directory when it starts)."""
    env = dict(os.environ, CRMPI_DIR=os.path.join(wd, "ckpt"))
    before = set(committed(wd))
    marker = os.path.join(wd, "ckpt", "finished")
    p = subprocess.Popen([prog] + ARGS, cwd=wd, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60

    def ready():
        return not os.path.exists(marker) and len(set(committed(wd)) - before) >= min_epochs
    while not ready() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    if p.poll() is not None:
        fail("%s finished before it could be killed" % prog)
    p.send_signal(signal.SIGKILL)
    p.wait()
    if not committed(wd):
        fail("no committed checkpoint after the kill")


def fresh(wd):
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)


def mismatch(prog, variant, wd):
    fresh(wd)
    installed = os.path.join(wd, "prog")
    shutil.copy2(prog, installed)
    rc, ref, _ = run(installed, wd)
    if rc != 0:
        fail("reference run exited %d" % rc)
    run_and_kill(installed, wd)
    shutil.copy2(variant, installed)
    rc, out, refusal = run(installed, wd)
    if rc == 0 or out:
        fail("a differently built program ran from the checkpoint (rc=%d, stdout %r)" % (rc, out[:80]))
    if "another executable or library build" not in refusal or "remove that directory" not in refusal:
        fail("refusal message unclear:\n" + refusal)
    shutil.copy2(prog, installed)
    rc, out, err = run(installed, wd)
    if rc != 0 or out != ref:
        fail("the original program could not resume after the refusal (rc=%d)\n%s" % (rc, err))
    print("badinput: PASS mismatch refused: %s; original resumed" %
          refusal.strip().splitlines()[-2], flush=True)


def corrupt_pages(path):
    with open(path, "r+b") as f:
        hdr = f.read(232)
        if hdr[:8] != b"CRMPIEP1":
            fail("%s: not an epoch file" % path)
        off, size, _ = struct.unpack_from("<QQQ", hdr, 88)
        if off == 0 or size == 0:
            return 0
        n = min(size, 1 << 16)
        f.seek(off)
        data = bytearray(f.read(n))
        for i in range(len(data)):
            data[i] ^= 0x5a
        f.seek(off)
        f.write(data)
        return n


def damaged(prog, wd):
    fresh(wd)
    rc, ref, _ = run(prog, wd)
    if rc != 0:
        fail("reference run exited %d" % rc)
    run_and_kill(prog, wd)
    newest = committed(wd)[-1]
    n = corrupt_pages(os.path.join(wd, "ckpt", newest))
    if n == 0:
        fail("%s has no page data to damage" % newest)
    rc, out, err = run(prog, wd)
    if rc != 0 or out != ref:
        fail("no fallback after damaging %s (rc=%d, stdout %r)\n%s" % (newest, rc, out[:80], err))
    if "corrupt" not in err:
        fail("the damage to %s went unnoticed:\n%s" % (newest, err))
    notice = [l for l in err.splitlines() if "corrupt" in l][0]
    print("badinput: PASS damaged %s (%d bytes), restart fell back and finished (%s)"
          % (newest, n, notice.strip()), flush=True)


def collision(prog, wd):
    fresh(wd)
    rc, out, err = run(prog, wd, CRMPI_REGION_BASE="0x555555554000")
    if rc == 0 or out:
        fail("the program ran with a colliding region (rc=%d)" % rc)
    if "fixed address is already in use" not in err or "CRMPI_REGION_BASE" not in err:
        fail("collision not reported clearly:\n" + err)
    if os.path.exists(os.path.join(wd, "ckpt")):
        fail("a checkpoint directory was created despite the collision")
    line = [l for l in err.splitlines() if "already in use" in l][0]
    print("badinput: PASS collision refused (%s)" % line.strip(), flush=True)


def disabled(prog, wd):
    fresh(wd)
    rc, ref, _ = run(prog, wd)
    if rc != 0:
        fail("reference run exited %d" % rc)
    shutil.rmtree(os.path.join(wd, "ckpt"))
    rc, out, err = run(prog, wd, CRMPI_DISABLE="1")
    if rc != 0 or out != ref:
        fail("CRMPI_DISABLE=1 changed the result (rc=%d)\n%s" % (rc, err))
    if os.path.exists(os.path.join(wd, "ckpt")):
        fail("CRMPI_DISABLE=1 still created a checkpoint directory")
    print("badinput: PASS disabled: same output, no checkpoint directory", flush=True)


def main(argv):
    if len(argv) == 4 and argv[0] == "mismatch":
        mismatch(argv[1], argv[2], argv[3])
    elif len(argv) == 3 and argv[0] in ("damaged", "collision", "disabled"):
        {"damaged": damaged, "collision": collision, "disabled": disabled}[argv[0]](argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
