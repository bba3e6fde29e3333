#!/bin/sh
# Unit and single-process tests under the sanitizers, each in its own
# build directory:
#
#   tests/sanitizers/run.sh [address|thread|mpi|all]     (default: all)
#   SAN_BUILD=dir   prefix of the build directories (default build-)
#
# address: -DCRMPI_SANITIZE=address (ASan + UBSan, leak checking on, UBSan
#          fatal), then every test labelled unit except mpi, slurm and
#          install (an MPI job's leaks belong to Open MPI; the install test
#          links a program without the ASan runtime) and interpose (ASan's
#          malloc comes before libcr's, so the interposition rules cannot
#          hold): region, heap, store, globals including the kill/restart
#          and fault tests.
# thread:  -DCRMPI_SANITIZE=thread, then the tests of the threaded parts
#          (region trackers with their handler thread, heap caches and
#          remote frees, store pipelined restore, exec persistent threads
#          and rendezvous; not the kill tests, nor interpose: TSan's malloc
#          comes before libcr's) with the region moved into
#          TSan's application range: TSan maps its shadow where the default
#          base 0x200000000000 is, so CRMPI_REGION_BASE is set to
#          0x7e8000000000 (tests with their own base pick one inside TSan's
#          ranges when built with -fsanitize=thread).
# mpi:     the ASan build of address, then MPI jobs of ASan-built libcrmpi
#          and test programs under mpirun, leak checking on: no leak after
#          MPI_Finalize. The MPI unit tests (handles, drain), the ring and
#          thread kill_app scenarios uninterrupted, and the named-point kill
#          tests (killed, restored, then finalized). Open MPI, PMIx, hwloc and HDF5 keep
#          memory past MPI_Finalize: lsan-mpi.supp names those libraries
#          only (never a crmpi object); the full (slow) unwinder is used
#          because those libraries have no frame pointers, and the fast
#          one stops inside them, before the frame a suppression names.
#          A canary (leak_canary: an MPI program of the ASan build that
#          leaks one block from main) must be
#          reported despite the suppressions, or the check fails.
# Suppressions: tests/sanitizers/*.supp (each entry says why).
# Prints "sanitize: PASS" or "sanitize: FAIL".
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/tests/sanitizers"
prefix=${SAN_BUILD:-$top/build-}
what=${1:-all}
status=0
mpiexec="mpiexec --oversubscribe --allow-run-as-root --mca btl self,vader --mca btl_vader_single_copy_mechanism none"
mpi_tests='^(test_vhandle_np2|test_drain_np2|mpi_plain_equals_crmpi_(ring|thread)_np2|mpi_fault_points_(ring|halo)_np2)$'

build() {   # $1 = address|thread
    b="${prefix}$( [ "$1" = address ] && echo asan || echo tsan )"
    cmake -S "$top" -B "$b" -DCRMPI_SANITIZE="$1" -DCRMPI_BUILD_PERF=OFF \
          -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$b.cmake.log" 2>&1 ||
        { cat "$b.cmake.log"; return 1; }
    cmake --build "$b" -j2 >"$b.build.log" 2>&1 || { tail -40 "$b.build.log"; return 1; }
}

run_address() {
    b="${prefix}asan"
    build address || return 1
    (cd "$b" &&
     ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:suppressions=$here/asan.supp" \
     LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0" \
     UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$here/ubsan.supp" \
     ctest -L unit -LE "mpi|slurm|install|fuzz|sanitize|interpose" --output-on-failure --timeout 600)
}

run_mpi() {
    b="${prefix}asan"
    build address || return 1
    (cd "$b" &&
     ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0:malloc_context_size=40:suppressions=$here/asan.supp" \
     LSAN_OPTIONS="suppressions=$here/lsan-mpi.supp:print_suppressions=0" \
     UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$here/ubsan.supp" \
     ctest -R "$mpi_tests" --no-tests=error --output-on-failure --timeout 900) || return 1
    # The suppressions must not hide a leak of ours.
    out=$(cd "$b" && ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0" \
          LSAN_OPTIONS="suppressions=$here/lsan-mpi.supp:print_suppressions=0" \
          $mpiexec -np 2 "$b/tests/sanitizers/leak_canary" 2>&1) &&
        { echo "leak canary: a leaking MPI program passed"; return 1; }
    case "$out" in
        *"LeakSanitizer: detected memory leaks"*leak_canary_main*) echo "leak canary: reported" ;;
        *) echo "leak canary: its leak was not reported:"; echo "$out" | tail -40; return 1 ;;
    esac
}

run_thread() {
    b="${prefix}tsan"
    build thread || return 1
    (cd "$b" &&
     CRMPI_REGION_BASE=0x7e8000000000 \
     TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp" \
     ctest -L "region|heap|store|exec" -LE "mpi|slurm|install|fuzz|sanitize|kill|interpose" \
           --output-on-failure --timeout 900)
}

case "$what" in
    address) run_address || status=1 ;;
    thread)  run_thread || status=1 ;;
    mpi)     run_mpi || status=1 ;;
    all)     run_address || status=1; run_thread || status=1 ;;
    *) echo "usage: $0 [address|thread|mpi|all]"; exit 2 ;;
esac
if [ $status -eq 0 ]; then echo "sanitize: PASS"; else echo "sanitize: FAIL"; fi
exit $status
