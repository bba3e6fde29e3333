#!/usr/bin/env bash
# Install what crmpi needs from Debian packages. Idempotent: installs only
# what is missing, so a second run is quick.
#   ./setup.sh            build + test dependencies
#   ./setup.sh --slurm    also Slurm and munge (job-script tests)
#   ./setup.sh --perf     also what the benchmarks compare against
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin
      libhdf5-openmpi-dev hdf5-tools
      libhwloc-dev libcunit1-dev
      python3 procps)
for arg in "$@"; do
  case "$arg" in
    --slurm) pkgs+=(slurm-wlm munge slurm-client) ;;
    --perf)  pkgs+=(libjemalloc-dev libmimalloc-dev libpmemobj-dev gnuplot-nox) ;;
    --fuzz)  pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "setup.sh: unknown option '$arg' (use --slurm, --perf, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "setup.sh: all dependencies present"; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup.sh: need root to install: ${missing[*]}" >&2
    echo "setup.sh: run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
else SUDO=; fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
