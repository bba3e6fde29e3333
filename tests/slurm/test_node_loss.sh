#!/usr/bin/env bash
# test_node_loss.sh - a node dies under a running job; the job comes back on
# the remaining nodes from its last checkpoint and gives the same answer.
#
#   test_node_loss.sh --app PROGRAM [--launcher srun|mpirun] [--no-spare]
#
# A 3-node cluster; the job template asks for 3 nodes and --no-kill and
# crmpi-run places 4 ranks on 2 of them (node1, node2), node3 spare. Once a
# checkpoint is committed, node2 is killed - its slurmd, slurmstepd and
# every job process on it, SIGKILL. Expected: the launcher excludes node2,
# relaunches on node1+node3, the program resumes from a checkpoint (not
# from step 0) and prints the checksum of an uninterrupted run.
# --no-spare: the job gets 2 nodes only; after the loss crmpi-run must stop
# with "too few nodes" (exit 4) and leave the checkpoint in place.
. "$(dirname "$0")/lib.sh"

# ~30 s of work: long enough to kill a node mid-run even on a loaded machine
# (with 20 s, a CI run under load saw its first epochs committed only as the
# job ended, and the kill came too late)
STEPS=300 SLEEP_MS=100
want=$(reference $STEPS)
log "reference: $want"

export CRMPI_DIR=$WORK/ckpt CRMPI_RANKS=4 CRMPI_CKPT_INTERVAL=2
export CRMPI_RUN_ARGS="--launcher $LAUNCHER --verbose --max-restarts 3"
NNODES=3
[ "$NO_SPARE" = 1 ] && NNODES=2
jid=$(submit --nodes=$NNODES --ntasks-per-node=2 --time=5 -- "$APP" $STEPS $SLEEP_MS) ||
  fail "sbatch failed"
log "submitted job $jid"

# One committed epoch is all the test needs ("resumes from a checkpoint");
# async checkpoints commit an epoch at the next checkpoint, so epoch N is
# on record one interval after it was taken.
wait_epoch 1 90 || fail "no checkpoint committed within 90 s"
batch=$(job_field "$jid" BatchHost)
run1=$(sed -n 's/.*: run 1 on //p' "$WORK/ckpt/crmpi-run/log" | head -1 | sed 's/ (restart.*//')
victim=
for n in $run1; do [ "$n" != "$batch" ] && { victim=$n; break; }; done
[ -n "$victim" ] || fail "run 1 is on '$run1' (batch host $batch): no node to kill but the batch host"
log "run 1 on: $run1 (batch host $batch); killing $victim after epoch $(sed -n 's/^epoch=//p' "$WORK/ckpt/crmpi-job.last")"
killed=$("$CLUSTER" kill-node "$victim")
log "killed pids on $victim: $killed"

state=$(wait_job "$jid" 200)
log "job $jid ended: $state"
if [ "$NO_SPARE" = 1 ]; then
  [ "$state" = FAILED ] || fail "job state $state, expected FAILED (too few nodes)"
  [ "$(job_field "$jid" ExitCode)" = 4:0 ] || fail "exit code $(job_field "$jid" ExitCode), expected 4:0"
  grep -q 'too few nodes: a run needs 2, the allocation has 1 healthy' "$WORK/ckpt/crmpi-run/log" ||
    fail "no 'too few nodes' message"
  [ -f "$WORK/ckpt/crmpi-job.last" ] || fail "the checkpoint record is gone"
  log "PASS: node $victim lost with no spare: 'too few nodes', exit 4, checkpoint kept"
  exit 0
fi
[ "$state" = COMPLETED ] || fail "job state $state, expected COMPLETED"

got=$(grep '^slurm_app: ranks' "$WORK/job.out")
[ "$got" = "$want" ] || fail "answer '$got' differs from the uninterrupted run '$want'"
grep -q "excluding node $victim" "$WORK/ckpt/crmpi-run/log" || fail "the launcher never excluded $victim"
run2=$(sed -n 's/.*: run 2 on //p' "$WORK/ckpt/crmpi-run/log" | head -1 | sed 's/ (restart.*//')
[ -n "$run2" ] || fail "no second run"
for n in $run2; do [ "$n" = "$victim" ] && fail "run 2 used the killed node $victim ($run2)"; done
[ "$(echo $run2 | wc -w)" = 2 ] || fail "run 2 is on '$run2', expected 2 nodes"
resumed=$(grep -E 'slurm_app: .*(resumed|restarted)' "$WORK/job.out" | head -1)
echo "$resumed" | grep -qE 'at step [1-9]' || fail "run 2 did not resume from a checkpoint: '$resumed'"
"$CLUSTER" wait-state "$victim" down 30 || fail "$victim is not DOWN in Slurm"
log "PASS: node $victim lost, run 2 on $run2, $resumed; $got"
