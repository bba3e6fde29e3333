#!/usr/bin/env bash
# slurm-cluster.sh - a real three-node Slurm cluster on this one machine.
#
# Starts munged (private socket and key), slurmctld and three `slurmd -N
# nodeN` (Debian's slurm-wlm is built with MULTIPLE_SLURMD, so several slurmd
# on one host are distinct nodes, each with its own port, spool directory,
# pid file and log) from a configuration generated in a directory of its own.
# Every daemon is started here in the foreground of a new session and its pid
# recorded; `stop` kills exactly those pids, plus every process that carries
# this cluster's tag in its environment (job processes) or holds one of its
# files open (slurmstepd), which the daemons started on our behalf - never
# anything found by name.
#
# Killing a node (`kill-node nodeN`) is a real node loss: its slurmd and every
# process of a job running "on" it die by SIGKILL. All nodes are this host, so
# a job process is attributed to a node by SLURMD_NODENAME in its environment
# (set by slurmstepd for every task, inherited by everything a task starts,
# e.g. Open MPI's orted and its ranks) and a slurmstepd (whose environment
# is empty) by the log file of its slurmd, which it keeps open. ReturnToService=2 and a short SlurmdTimeout make slurmctld mark
# the node DOWN within ~15 s, and a restarted slurmd returns it to service.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
NODES=(node1 node2 node3)

usage() {
  cat <<EOF
Usage: $(basename "$0") [--dir DIR] COMMAND

Run a real 3-node Slurm cluster (munged, slurmctld, slurmd -N node1..node3)
on this machine, in DIR (default \$CRMPI_SLURM_DIR or /tmp/crmpi-slurm-\$UID).
Needs root (the daemons run as root), slurm-wlm and munge (installed with
../../setup.sh --slurm when missing).

Commands:
  start            generate the configuration, start every daemon, wait until
                   the three nodes are idle; prints the environment to use
  stop             kill every daemon this script started (by recorded pid)
                   and every process tagged as belonging to this cluster
  status           daemons alive, sinfo, squeue
  env              print 'export SLURM_CONF=...' lines for clients
  kill-node NODE   node loss: SIGKILL NODE's slurmd, its slurmstepds and all
                   job processes running on it; prints the pids killed
  wait-state NODE STATE [SECONDS]
                   wait until sinfo shows NODE in STATE (e.g. down, idle)
  restart-node NODE  start NODE's slurmd again (ReturnToService=2 resumes it)

Environment: CRMPI_SLURM_DIR (cluster directory), CRMPI_SLURM_PORT (first
of 4 consecutive TCP ports; default: the first free block from 26817).
EOF
}

DIR=${CRMPI_SLURM_DIR:-/tmp/crmpi-slurm-$(id -u)}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) break ;;
  esac
done
CMD=${1:-}
[ -n "$CMD" ] || { usage >&2; exit 2; }
shift
CONF=$DIR/slurm.conf
TAG=CRMPI_SLURM_CLUSTER=$DIR

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# ---- processes ------------------------------------------------------------

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Pids of processes whose environment contains the exact entry $1.
pids_with_env() {
  local want=$1 p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF -- "$want"; then
      echo "$p"
    fi
  done
}

# Pids of processes holding an open file whose path starts with $1. A
# slurmstepd has an empty environment but keeps its slurmd's log open.
pids_with_open_file() {
  local want=$1 p f
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    for f in /proc/$p/fd/*; do
      case "$(readlink "$f" 2>/dev/null)" in "$want"*) echo "$p"; break ;; esac
    done
  done
}

# Kill pids with SIGTERM, then SIGKILL whatever is left after $2 seconds.
kill_pids() {
  local pids=$1 grace=${2:-5} p i
  [ -n "$pids" ] || return 0
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < grace * 10; i++)); do
    local alive=
    for p in $pids; do pid_alive "$p" && alive="$alive $p"; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  for p in $pids; do pid_alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
  return 0
}

# Start "$@" as a daemon in the foreground of its own session, tagged, with
# its pid recorded in $DIR/pids/$name.pid.
start_daemon() {
  local name=$1; shift
  env "$TAG" "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/pids/$name.pid"
  sleep 0.3
  pid_alive "$pid" || die "$name did not start (see $DIR/log/$name.out):
$(tail -5 "$DIR/log/$name.out")"
}

# ---- configuration ----------------------------------------------------------

# Free: no TCP socket in any state has it as its local port (a connection's
# local port blocks a bind as much as a listener does).
port_free() { ! ss -tanH 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$1\$"; }

# The default block lies below the kernel's ephemeral range (32768-60999 by
# default): inside it, a port found free could become some connection's
# local port before slurmd binds it (seen once: "Unable to bind listen
# port (46820): Address already in use" while MPI jobs ran beside).
pick_ports() {
  local p=${CRMPI_SLURM_PORT:-26817} i ok
  for ((tries = 0; tries < 50; tries++)); do
    ok=1
    for ((i = 0; i < 4; i++)); do port_free $((p + i)) || { ok=0; break; }; done
    [ $ok = 1 ] && { echo "$p"; return 0; }
    [ -n "${CRMPI_SLURM_PORT:-}" ] && break
    p=$((p + 10))
  done
  die "no 4 free consecutive TCP ports from ${CRMPI_SLURM_PORT:-26817}"
}

write_conf() {
  local port=$1 host cpus
  host=$(hostname -s)
  # Each node claims the whole machine; config_overrides lets a smaller
  # machine run it anyway. Two CPUs per node: 4 ranks fit on 2 nodes.
  cpus=2
  cat >"$CONF" <<EOF
# Generated by tests/slurm/slurm-cluster.sh for a one-machine test cluster.
ClusterName=crmpitest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start
# again (default 120 s).
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
# PMIx makes its client directory under TmpFS: per node, or the nodes collide.
TmpFS=$DIR/tmp/%n
# All nodes share this host's /tmp and /dev/shm; the task prolog gives each
# node its own (Open MPI names its shared-memory files by host and local rank).
TaskProlog=$DIR/task-prolog.sh
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=10
SlurmctldTimeout=30
MessageTimeout=5
InactiveLimit=0
KillWait=5
MinJobAge=600
OverTimeLimit=0
JobRequeue=1
RebootProgram=/bin/false
NodeName=node1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=$cpus RealMemory=1000 State=UNKNOWN
NodeName=node2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 2)) CPUs=$cpus RealMemory=1000 State=UNKNOWN
NodeName=node3 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 3)) CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=node[1-3] Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/task-prolog.sh" <<PROLOG
#!/bin/sh
# Lines "export NAME=VALUE" on stdout set the task's environment.
d=$DIR/tmp/\${SLURMD_NODENAME:-unknown}
echo "export TMPDIR=\$d"
echo "export OMPI_MCA_btl_vader_backing_directory=\$d"
echo "export OMPI_MCA_btl_tcp_if_include=lo"
# mpirun starts its ranks with its own environment (the batch node's), so
# per-node directories cannot keep ranks of different nodes from colliding
# in shared memory: nodes here talk TCP over loopback, as real nodes would.
echo "export OMPI_MCA_btl=self,tcp"
echo "export OMPI_MCA_oob_tcp_if_include=lo"
PROLOG
  chmod 0755 "$DIR/task-prolog.sh"
  # slurmd looks for cgroup.conf next to slurm.conf; say we do not use it.
  : >"$DIR/cgroup.conf"
}

ensure_installed() {
  local missing=
  for b in slurmctld slurmd munged sbatch; do
    command -v "$b" >/dev/null 2>&1 || missing=1
  done
  [ -z "$missing" ] && return 0
  say "slurm-wlm/munge missing: running setup.sh --slurm"
  "$TOP/setup.sh" --slurm >&2
}

start_munge() {
  mkdir -p "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey -c -f -k "$DIR/munge/munge.key" >/dev/null 2>&1 ||
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  else
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 0400 "$DIR/munge/munge.key"
  # munged insists on /run/munge existing even with a private socket.
  mkdir -p /run/munge
  start_daemon munged munged -F -f --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
  local i
  for ((i = 0; i < 50; i++)); do
    [ -S "$DIR/munge/munge.socket" ] && return 0
    sleep 0.1
  done
  die "munged socket $DIR/munge/munge.socket did not appear (see $DIR/log/munged.log)"
}

start_slurmd() {
  local n=$1
  mkdir -p "$DIR/spool/$n" "$DIR/tmp/$n"
  start_daemon "slurmd.$n" env SLURM_CONF="$CONF" \
    slurmd -D -N "$n" -f "$CONF"
}

node_state() {  # node -> sinfo state (lower case, '*' = not responding)
  SLURM_CONF=$CONF sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -1
}

wait_state() {
  local n=$1 want=$2 secs=${3:-60} i s=
  for ((i = 0; i < secs * 2; i++)); do
    s=$(node_state "$n")
    # "down*": down and not responding; "idle*" is not idle yet.
    [ "$s" = "$want" ] && return 0
    [ "$want" != idle ] && [ "$s" = "$want*" ] && return 0
    sleep 0.5
  done
  say "node $n is '$s' after ${secs}s, expected '$want'"
  return 1
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd needs it)"
  ensure_installed
  if [ -f "$DIR/pids/slurmctld.pid" ] && pid_alive "$(cat "$DIR/pids/slurmctld.pid")"; then
    die "a cluster is already running in $DIR (use stop first)"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"/{pids,log,run,ctld,spool}
  local port
  port=$(pick_ports)
  write_conf "$port"
  start_munge
  start_daemon slurmctld env SLURM_CONF="$CONF" slurmctld -D -c -i -f "$CONF"
  local n
  for n in "${NODES[@]}"; do start_slurmd "$n"; done
  for n in "${NODES[@]}"; do
    wait_state "$n" idle 60 || { cmd_status >&2; die "cluster did not come up"; }
  done
  say "up in $DIR (ports $port-$((port + 3)))"
  cmd_env
}

cmd_stop() {
  local f pids='' p
  if [ -d "$DIR/pids" ]; then
    # slurmd first, so that nothing new is started while we clean up.
    for f in "$DIR"/pids/slurmd.*.pid "$DIR/pids/slurmctld.pid" "$DIR/pids/munged.pid"; do
      [ -f "$f" ] || continue
      p=$(cat "$f")
      pid_alive "$p" && pids="$pids $p"
    done
  fi
  kill_pids "$pids" 5
  # Processes our daemons started: slurmstepd (tag inherited from slurmd)
  # and job processes (tag inherited from the submitting environment).
  pids=$( (pids_with_env "$TAG"; pids_with_open_file "$DIR/") | sort -un | tr '\n' ' ')
  kill_pids "$pids" 3
  rm -f "$DIR"/pids/*.pid 2>/dev/null || true
  say "stopped (${DIR})"
}

cmd_status() {
  local f p rc=0
  for f in "$DIR"/pids/*.pid; do
    [ -f "$f" ] || { echo "no daemons recorded in $DIR"; return 1; }
    p=$(cat "$f")
    if pid_alive "$p"; then echo "$(basename "$f" .pid): pid $p alive"
    else echo "$(basename "$f" .pid): pid $p DEAD"; rc=1; fi
  done
  SLURM_CONF=$CONF sinfo -N -o '%N %T %E' 2>&1 || true
  SLURM_CONF=$CONF squeue 2>&1 || true
  return $rc
}

cmd_env() {
  echo "export SLURM_CONF=$CONF"
  echo "export $TAG"
}

cmd_kill_node() {
  local n=${1:?node name}
  local f=$DIR/pids/slurmd.$n.pid pids='' p
  [ -f "$f" ] || die "no slurmd recorded for $n"
  p=$(cat "$f")
  pid_alive "$p" && pids="$p"
  pids="$pids $(pids_with_open_file "$DIR/log/slurmd.$n.log" | tr '\n' ' ')"
  pids="$pids $(pids_with_env "SLURMD_NODENAME=$n" | tr '\n' ' ')"
  pids=$(echo $pids | tr ' ' '\n' | sort -un | tr '\n' ' ')
  local desc=
  for p in $pids; do desc="$desc $p:$(cat /proc/$p/comm 2>/dev/null)"; done
  # Stop them all first so that none reacts to the death of another.
  for p in $pids; do kill -STOP "$p" 2>/dev/null || true; done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  echo $desc
}

case "$CMD" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  kill-node) cmd_kill_node "$@" ;;
  wait-state) wait_state "$@" ;;
  restart-node) start_slurmd "${1:?node name}"; wait_state "$1" idle 60 ;;
  *) usage >&2; exit 2 ;;
esac
