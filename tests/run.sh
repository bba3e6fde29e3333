#!/usr/bin/env bash
# Set up (Debian packages), build, and run every test of crmpi.
#   tests/run.sh [ctest arguments...]     e.g. tests/run.sh -L unit
# Builds into build/ at the top of the source tree.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$top/setup.sh" --slurm --fuzz
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$top/build" -j"$(nproc)"
cd "$top/build"
# MPI and kill/restart tests oversubscribe the cores: run tests one at a time.
ctest --output-on-failure --timeout 1200 "$@"
