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
# One test at a time by default; CRMPI_TEST_JOBS=2 runs two (tests that
# share a machine-wide resource, the Slurm test cluster, hold a CTest
# RESOURCE_LOCK, but two at a time made the Slurm node-loss tests flaky).
ctest --output-on-failure --timeout 1200 -j"${CRMPI_TEST_JOBS:-1}" "$@"
