#!/usr/bin/env python3
"""copyreloc.py PROGRAM DIR - drive tr_copyreloc through a checkpoint, a
SIGKILL and a restart (see tr_copyreloc.c); check its copy relocations, its
verdict and the two output files."""
import os
import shutil
import signal
import subprocess
import sys

prog, d = sys.argv[1], sys.argv[2]
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d)
relocs = subprocess.run(["readelf", "-rW", prog], capture_output=True, text=True).stdout
copies = [l.split()[4] for l in relocs.splitlines() if "R_X86_64_COPY" in l]
for sym in ("__environ", "optarg", "optind", "stdout"):
    if not any(c.startswith(sym) for c in copies):
        sys.exit("FAIL: %s is not a copy relocation in %s (%s)" % (sym, prog, copies))
# Synchronous checkpoints: phase 1 kills itself right after its only
# checkpoint, which in async mode would still be uncommitted (the deferred
# commit is tested elsewhere; this test is about globals and files).
env = dict(os.environ, CRMPI_DIR=os.path.join(d, "ckpt"), CRMPI_CKPT_MODE="sync")
outf, rawf = os.path.join(d, "out.txt"), os.path.join(d, "raw.txt")
p1 = subprocess.run([prog, "-p", "1", "-t", "first", outf, rawf],
                    env=dict(env, TR_PHASE="1"), capture_output=True, text=True)
if p1.returncode != -signal.SIGKILL:
    sys.exit("FAIL: phase 1 ended with %d: %s%s" % (p1.returncode, p1.stdout, p1.stderr))
with open(outf) as f:
    if "line 12 of the stream" not in f.read():
        sys.exit("FAIL: phase 1 did not write past the checkpoint")
p2 = subprocess.run([prog, "x", "y", "z", "w"], env=dict(env, TR_PHASE="2"),
                    capture_output=True, text=True)
print(p2.stdout, p2.stderr, end="")
if p2.returncode != 0 or "OK" not in p2.stdout:
    sys.exit("FAIL: phase 2 ended with %d" % p2.returncode)
# Silent by default: a message means something went wrong (e.g. transparent
# mode could not be set up and the program ran without it).
for phase, p in (("1", p1), ("2", p2)):
    if p.stderr:
        sys.exit("FAIL: phase %s wrote to stderr:\n%s" % (phase, p.stderr))
for path, what in ((outf, "stream"), (rawf, "descriptor")):
    want = "".join("line %d of the %s\n" % (i, what) for i in range(20))
    with open(path) as f:
        got = f.read()
    if got != want:
        sys.exit("FAIL: %s differs from the uninterrupted output:\n%s" % (path, got))
print("copyreloc: PASS")
