#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer: tools/asan-test.sh [swift test args...]
#   e.g. tools/asan-test.sh --filter CFGTests
# Builds into .build-asan (never the default .build). Extra arguments go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

# OpenBLAS reads OPENBLAS_CORETYPE when it is loaded (REFERENCE.md §6): without it Debian's
# build picks slow generic kernels on these CPUs. One thread: the tests are small and the
# machine is shared.
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# Leak checking is off: the Swift runtime's metadata caches and once-initialised globals
# read as leaks at exit. Errors abort with a report; the backtracer would add little.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export SWIFT_BACKTRACE=enable=no

swift test --scratch-path .build-asan --sanitize=address "$@"
