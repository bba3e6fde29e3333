#!/usr/bin/env bash
# test_time_limit.sh - the time limit approaches: the job checkpoints on
# Slurm's warning signal, is requeued, resumes and gives the same answer.
#
#   test_time_limit.sh --app PROGRAM [--launcher srun|mpirun]
#
# --time=2 --signal=B:USR1@90: slurmctld signals crmpi-run when the end is
# near; it checks every 30 s, and here the signal came 10-30 s into a run
# (a requeued run included). The first run of the program has over 60 s of
# work (300 steps of 200 ms), so it is always interrupted; a requeued run
# does not sleep (slurm_app ... first) and needs a few seconds: one or two
# requeues are expected, five are allowed. No periodic checkpoints
# (CRMPI_CKPT_INTERVAL=3600): every checkpoint is a
# stop checkpoint. Expected: SIGUSR1 forwarded, the stop marker written,
# the job requeued (Restarts >= 1), the program resumed from that
# checkpoint and the checksum of an uninterrupted run.
. "$(dirname "$0")/lib.sh"

STEPS=300 SLEEP_MS=200
want=$(reference $STEPS)
log "reference: $want"

export CRMPI_DIR=$WORK/ckpt CRMPI_RANKS=4 CRMPI_CKPT_INTERVAL=3600
export CRMPI_RUN_ARGS="--launcher $LAUNCHER --verbose --max-requeues 5"
jid=$(submit --nodes=3 --ntasks-per-node=2 --time=2 --signal=B:USR1@90 -- "$APP" $STEPS $SLEEP_MS first) ||
  fail "sbatch failed"
log "submitted job $jid"

state=$(wait_job "$jid" 270)
log "job $jid ended: $state after $(job_field "$jid" Restarts) requeue(s)"
[ "$state" = COMPLETED ] || fail "job state $state, expected COMPLETED"
restarts=$(job_field "$jid" Restarts)
[ "${restarts:-0}" -ge 1 ] || fail "the job was never requeued (Restarts=$restarts)"
L=$WORK/ckpt/crmpi-run/log
grep -q 'received SIGUSR1' "$L" || fail "the launcher never got the time-limit signal"
grep -q 'checkpointed (epoch [0-9]*) and stopped on SIGUSR1: requeueing' "$L" ||
  fail "no stop checkpoint before the requeue"
got=$(grep '^slurm_app: ranks' "$WORK/job.out" | tail -1)
[ "$got" = "$want" ] || fail "answer '$got' differs from the uninterrupted run '$want'"
resumed=$(grep -cE 'slurm_app: .*(resumed|restarted) .*at step [1-9]' "$WORK/job.out")
[ "$resumed" -ge 1 ] || fail "no run resumed from a checkpoint"
log "PASS: $restarts requeue(s), $resumed resumed run(s); $got"
