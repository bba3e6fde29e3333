#!/usr/bin/env bash
# test_launcher_local.sh - crmpi-run outside Slurm (mpirun on this host):
# usage texts, relaunch after a rank is SIGKILLed, refusal of a checkpoint
# of another program or rank count, restarts exhausted, HALT before and
# during a run, stop on SIGUSR1 and resume. Uses the application-level
# build of slurm_app (its own checkpoint files + crmpi's job control).
#
#   test_launcher_local.sh --app PROGRAM
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=$HERE/../../job-scripts/crmpi-run
APP=
[ "${1:-}" = --app ] && APP=$2
[ -x "$APP" ] || { echo "usage: $0 --app PROGRAM"; exit 2; }
APP=$(readlink -f "$APP")
unset SLURM_JOB_ID SLURM_NTASKS SLURM_NTASKS_PER_NODE SLURM_JOB_NUM_NODES
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,tcp
WORK=$(mktemp -d /tmp/crmpi-launcher.XXXXXX)
trap 'rc=$?; [ $rc = 0 ] && rm -rf "$WORK" || echo "kept $WORK"; exit $rc' EXIT
npass=0
ok() { npass=$((npass + 1)); echo "ok - $*"; }
fail() { echo "FAIL: $*"; for f in "$WORK"/*.err; do echo "--- $f"; tail -15 "$f"; done; exit 1; }
LA=(--launcher mpirun --launcher-args --oversubscribe)

# run_bg DIR ARGS...: crmpi-run in the background, output in DIR.err
run_bg() { local d=$1; shift; CRMPI_DIR=$WORK/$d "$RUN" "$@" >"$WORK/$d.out" 2>"$WORK/$d.err" & PID=$!; }
epoch() { sed -n 's/^epoch=//p' "$WORK/$1/crmpi-job.last" 2>/dev/null; }
wait_epoch() { local i; for ((i = 0; i < 120; i++)); do e=$(epoch "$1"); [ -n "$e" ] && [ "$e" -ge "$2" ] && return 0; sleep 0.5; done; return 1; }
app_pids() {  # ranks of the app whose CRMPI_DIR is $WORK/$1
  local p
  for p in $(pgrep -f "$(basename "$APP")"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "CRMPI_DIR=$WORK/$1" && echo "$p"
  done
}

# usage texts
"$RUN" --help | grep -q '^Usage: crmpi-run' || fail "crmpi-run --help"
"$RUN" --bogus x >/dev/null 2>&1; [ $? = 2 ] || fail "unknown option is not exit 2"
"$RUN" -n 4 >/dev/null 2>&1; [ $? = 2 ] || fail "missing program is not exit 2"
bash "$HERE/../../job-scripts/crmpi.sbatch" --help | grep -q '^Usage: sbatch' || fail "crmpi.sbatch --help"
"$HERE/slurm-cluster.sh" --help | grep -q '^Usage:' || fail "slurm-cluster.sh --help"
ok "usage texts and usage errors"

want=$(cd "$WORK" && CRMPI_DIR=$WORK/ref mpirun -np 4 --oversubscribe "$APP" 150 0 2>/dev/null | grep '^slurm_app: ranks')
[ -n "$want" ] || fail "reference run"

# a rank SIGKILLed mid-run: relaunched, resumes, same answer
export CRMPI_CKPT_INTERVAL=1
run_bg crash -n 4 "${LA[@]}" -- "$APP" 150 40
wait_epoch crash 2 || fail "no checkpoint in the crash run"
victim=$(app_pids crash | tail -1)
[ -n "$victim" ] || fail "no rank found to kill"
kill -9 "$victim"
wait $PID; rc=$?
[ $rc = 0 ] || fail "crash run exit $rc"
[ "$(grep '^slurm_app: ranks' "$WORK/crash.out")" = "$want" ] || fail "answer after the crash differs"
grep -q 'run 2 on this host' "$WORK/crash.err" || fail "no relaunch"
grep -qE 'resumed from epoch [1-9]|restarted at step [1-9]' "$WORK/crash.err" || fail "relaunch did not resume"
ok "rank $victim SIGKILLed: relaunched, resumed, same checksum"

# the same directory with another rank count or another program: refused
CRMPI_DIR=$WORK/crash "$RUN" -n 2 "${LA[@]}" -- "$APP" 150 0 >/dev/null 2>"$WORK/foreign.err"
[ $? = 1 ] || fail "other rank count not refused"
grep -q 'checkpoint from another job .*written by 4 ranks' "$WORK/foreign.err" || fail "rank-count message"
cp "$APP" "$WORK/other_app"
CRMPI_DIR=$WORK/crash "$RUN" -n 4 "${LA[@]}" -- "$WORK/other_app" 150 0 >/dev/null 2>"$WORK/foreign2.err"
[ $? = 1 ] || fail "other program not refused"
grep -q "checkpoint from another job .*written by $(readlink -f "$APP")" "$WORK/foreign2.err" || fail "program message"
ok "checkpoint of another rank count / program refused with a clear message"

# a program that always fails: restarts exhausted
CRMPI_DIR=$WORK/fail "$RUN" -n 1 "${LA[@]}" --max-restarts 2 -- /bin/false >/dev/null 2>"$WORK/fail.err"
[ $? = 3 ] || fail "exhausted restarts is not exit 3"
[ "$(grep -c 'before any checkpoint was committed' "$WORK/fail.err")" = 3 ] || fail "not 3 runs"
grep -q 'restarts exhausted (2)' "$WORK/fail.err" || fail "exhausted message"
ok "restarts bounded: 3 runs then exit 3"

# HALT before start
mkdir -p "$WORK/halt0" && touch "$WORK/halt0/HALT"
CRMPI_DIR=$WORK/halt0 "$RUN" -n 1 "${LA[@]}" -- /bin/true >/dev/null 2>"$WORK/halt0.err"
[ $? = 5 ] || fail "HALT before start is not exit 5"
ok "HALT before start: not started, exit 5"

# HALT during a run: the ranks checkpoint and stop
export CRMPI_CKPT_INTERVAL=3600
run_bg halt -n 4 "${LA[@]}" -- "$APP" 150 40
sleep 3; touch "$WORK/halt/HALT"
wait $PID; rc=$?
[ $rc = 5 ] || fail "HALT during the run: exit $rc"
grep -q 'halted: checkpoint epoch 1 committed' "$WORK/halt.err" || fail "no stop checkpoint on HALT"
rm "$WORK/halt/HALT"
ok "HALT during a run: stop checkpoint, exit 5"

# SIGUSR1 to the launcher: stop (not in Slurm: exit 75), then resume
CRMPI_DIR=$WORK/halt "$RUN" -n 4 "${LA[@]}" -- "$APP" 150 40 >"$WORK/usr1.out" 2>"$WORK/usr1.err" &
PID=$!
sleep 3; kill -USR1 $PID
wait $PID; rc=$?
[ $rc = 75 ] || fail "SIGUSR1: exit $rc, want 75"
grep -q 'checkpointed (epoch 2) and stopped on SIGUSR1; stopped with the checkpoint' "$WORK/usr1.err" || fail "usr1 message"
CRMPI_DIR=$WORK/halt "$RUN" -n 4 "${LA[@]}" -- "$APP" 150 0 >"$WORK/resume.out" 2>"$WORK/resume.err"
[ $? = 0 ] || fail "resume after the stop"
[ "$(grep '^slurm_app: ranks' "$WORK/resume.out")" = "$want" ] || fail "answer after HALT+USR1 stops differs"
grep -q 'resuming from checkpoint epoch 2' "$WORK/resume.err" || fail "resume message"
ok "SIGUSR1: stop checkpoint, exit 75; resubmitted: same checksum"
echo "PASS: $npass checks"
