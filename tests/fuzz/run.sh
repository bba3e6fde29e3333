#!/bin/sh
# Fuzz the container reader and the index parser for a bounded time.
#
#   tests/fuzz/run.sh                 60 s per harness
#   FUZZ_SECONDS=600 tests/fuzz/run.sh
#   FUZZ_BUILD=dir                    build directory (default build-fuzz/)
#
# Configures its own build directory with clang, CRMPI_FUZZ=ON and
# CRMPI_SANITIZE=address (ASan + UBSan, UBSan fatal), builds the harnesses
# and the seed generator, generates fresh seeds from real checkpoints
# (gen_corpus) and runs each harness on the kept corpus (tests/fuzz/corpus)
# plus the fresh seeds; new inputs go to $FUZZ_BUILD/fuzz-work/, crashing
# inputs to $FUZZ_BUILD/fuzz-artifacts/. Prints one line per harness with
# the executions run and the crashes found, then "fuzz: PASS" or
# "fuzz: FAIL"; the same lines go to $FUZZ_BUILD/fuzz-results.txt.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$top/build-fuzz}
secs=${FUZZ_SECONDS:-60}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: FAIL: clang is not installed (./setup.sh --fuzz)"; exit 1
fi
echo "fuzz: configuring $build"
cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER=clang -DCRMPI_FUZZ=ON \
      -DCRMPI_SANITIZE=address -DCRMPI_BUILD_PERF=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      >"$build.cmake.log" 2>&1 || { cat "$build.cmake.log"; echo "fuzz: FAIL: configure"; exit 1; }
cmake --build "$build" -j2 --target fuzz_index fuzz_epoch gen_corpus >"$build.build.log" 2>&1 ||
    { tail -40 "$build.build.log"; echo "fuzz: FAIL: build"; exit 1; }

seeds="$build/fuzz-seeds"
rm -rf "$seeds"
ASAN_OPTIONS=detect_leaks=0 "$build/tests/fuzz/gen_corpus" "$seeds" ||
    { echo "fuzz: FAIL: gen_corpus"; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
results="$build/fuzz-results.txt"
: >"$results"
status=0
for h in index epoch; do
    work="$build/fuzz-work/$h"
    art="$build/fuzz-artifacts"
    log="$build/fuzz-$h.log"
    mkdir -p "$work" "$art"
    rc=0
    "$build/tests/fuzz/fuzz_$h" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$art/$h-" -timeout=20 -rss_limit_mb=2048 \
        "$work" "$top/tests/fuzz/corpus/$h" "$seeds/$h" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
    crashes=$(ls "$art" 2>/dev/null | grep -c "^$h-" || true)
    line="fuzz_$h: ${secs}s, ${execs:-0} executions, coverage ${cov:-?} edges, corpus $(ls "$work" | wc -l) new inputs, exit $rc, crash artifacts $crashes"
    echo "$line" | tee -a "$results"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        grep -m 20 -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" || true
        ls "$art" | sed 's/^/  artifact: /'
    fi
done
if [ $status -eq 0 ]; then echo "fuzz: PASS" | tee -a "$results"; else echo "fuzz: FAIL" | tee -a "$results"; fi
exit $status
