# shellcheck shell=bash
# lib.sh - shared by the Slurm test scripts (sourced, not run).
#
# Parses --app PATH --launcher srun|mpirun, skips (exit 77) with the reason
# when the test cannot run here, starts a private cluster with
# slurm-cluster.sh in a fresh work directory and stops it on exit (every
# daemon by pid), and offers helpers to submit the job template, wait for
# a job, and compute the reference answer of an uninterrupted run.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CLUSTER=$HERE/slurm-cluster.sh
TEST=$(basename "$0" .sh)
APP=
LAUNCHER=srun
NO_SPARE=0   # read by test_node_loss.sh
export NO_SPARE
SKIP_REASON=
SKIP=77

log() { echo "[$TEST $(date +%T)] $*"; }
skip() { echo "SKIPPED: $TEST: $*"; exit $SKIP; }

while [ $# -gt 0 ]; do
  case "$1" in
    --app) APP=$2; shift 2 ;;
    --launcher) LAUNCHER=$2; shift 2 ;;
    --no-spare) NO_SPARE=1; shift ;;
    --skip-reason=*) SKIP_REASON=${1#--skip-reason=}; shift ;;
    -h|--help)
      echo "Usage: $0 --app PROGRAM [--launcher srun|mpirun] [--no-spare]"
      echo "Starts a private 3-node Slurm cluster (needs root), runs the test, stops the cluster."
      exit 0 ;;
    *) echo "$0: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

[ -n "$SKIP_REASON" ] && skip "$SKIP_REASON"
if [ -z "$APP" ] || [ ! -x "$APP" ]; then
  skip "the test program '${APP:-slurm_app}' was not built: it needs libcrmpi (CMake target crmpi from mpi-wrap/), which this tree does not have yet"
fi
[ "$(id -u)" -eq 0 ] || skip "needs root: the slurmd daemons of the test cluster run as root"

WORK=$(mktemp -d /tmp/crmpi-$TEST.XXXXXX)
export CRMPI_SLURM_DIR=$WORK/cluster

cleanup() {
  local rc=$?
  "$CLUSTER" stop >/dev/null 2>&1 || true
  if [ "$rc" -eq 0 ]; then
    echo "---- launcher log"
    grep -v ': command: ' "$WORK/ckpt/crmpi-run/log" 2>/dev/null | cut -c12-
  fi
  if [ "$rc" -eq 0 ] || [ "$rc" -eq $SKIP ]; then rm -rf "$WORK"
  else echo "work directory kept for inspection: $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $TEST: $*"
  echo "---- job output ($WORK/job.out)"; cat "$WORK/job.out" 2>/dev/null | tail -60
  echo "---- launcher log"; cat "$WORK/ckpt/crmpi-run/log" 2>/dev/null | tail -40
  echo "---- cluster"; "$CLUSTER" status 2>&1 | tail -20
  exit 1
}

if ! "$CLUSTER" start >"$WORK/cluster-env" 2>"$WORK/cluster-start.err"; then
  if ! command -v slurmctld >/dev/null 2>&1; then
    skip "Slurm is not installed and setup.sh --slurm could not install it: $(tail -2 "$WORK/cluster-start.err")"
  fi
  cat "$WORK/cluster-start.err"
  echo "FAIL: $TEST: the test cluster did not start"
  exit 1
fi
# shellcheck disable=SC1091
. "$WORK/cluster-env"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATH=$TOP/job-scripts:$PATH
log "cluster up in $CRMPI_SLURM_DIR; app $APP; launcher $LAUNCHER"

# reference STEPS: checksum line of an uninterrupted run (mpirun, no Slurm).
reference() {
  local out
  out=$(cd "$WORK" && CRMPI_DIR=$WORK/ref OMPI_MCA_btl=self,tcp CRMPI_CKPT_INTERVAL=3600 \
        mpirun -np 4 --oversubscribe "$APP" "$1" 0 2>"$WORK/ref.err") ||
    fail "the uninterrupted reference run failed: $(tail -5 "$WORK/ref.err")"
  echo "$out" | grep '^slurm_app: ranks' || fail "reference run printed no checksum: $out"
}

# submit [SBATCH OPTIONS...] -- APP ARGS...: prints the job id.
submit() {
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  sbatch --parsable --chdir="$WORK" --output="$WORK/job.out" "${opts[@]}" \
    "$TOP/job-scripts/crmpi.sbatch" "$@"
}

job_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# wait_job JOBID SECONDS: until the job reached a final state; prints it.
wait_job() {
  local i st=
  for ((i = 0; i < $2; i++)); do
    st=$(job_field "$1" JobState)
    case "$st" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        echo "$st"; return 0 ;;
    esac
    sleep 1
  done
  echo "TIMEOUT_WAITING($st)"
}

# wait_epoch N SECONDS: until the job committed checkpoint epoch >= N.
wait_epoch() {
  local i e
  for ((i = 0; i < $2 * 2; i++)); do
    e=$(sed -n 's/^epoch=//p' "$WORK/ckpt/crmpi-job.last" 2>/dev/null)
    [ -n "$e" ] && [ "$e" -ge "$1" ] && return 0
    sleep 0.5
  done
  return 1
}
