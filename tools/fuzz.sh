#!/usr/bin/env bash
# Fuzzes the input readers with libFuzzer: tools/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS[:SECONDS]...]
#
# Builds gvae-fuzz with ASan and libFuzzer coverage into .build-fuzz, runs each harness
# (default: all) for SECONDS over a working corpus in .build-fuzz/corpus/<harness> seeded
# from Fuzz/corpus, replays Fuzz/regressions, and prints executions, corpus size and crashes.
# Crashing inputs go to Fuzz/crashes/<harness>/ for triage: minimise one with
#   .build-fuzz/release/gvae-fuzz HARNESS -minimize_crash=1 -runs=100000 CRASH_FILE
# then save it under Fuzz/regressions/<harness>/ (FuzzTests replays it in `swift test`).
# Environment: FUZZ_JOBS (parallel processes per harness, default 1), FUZZ_FLAGS (extra
# libFuzzer flags), FUZZ_NO_BUILD=1 (reuse the last build).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all=(zinc-parse equation-parse zinc-rr-parse vector-line index-line smiles-check grammar-file safetensors model-file checkpoint)
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")
jobs=${FUZZ_JOBS:-1}
scratch=.build-fuzz

# SwiftPM links its own main, so libFuzzer comes without one (fuzzer_no_main) and
# gvae-fuzz calls LLVMFuzzerRunDriver; -sanitize=fuzzer would link a second main.
toolchain=$(dirname "$(dirname "$(command -v swiftc)")")
runtime=$(ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-"$(uname -m)".a 2>/dev/null | head -1)
if [ -z "$runtime" ]; then
  echo "fuzz.sh: libclang_rt.fuzzer_no_main not found under $toolchain/lib/clang" >&2
  exit 1
fi
if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  echo "fuzz.sh: building gvae-fuzz (release, ASan, libFuzzer) into $scratch" >&2
  swift build -c release --scratch-path "$scratch" --product gvae-fuzz \
    -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,indirect-calls,trace-cmp,inline-8bit-counters,pc-table \
    -Xswiftc -DFUZZING \
    -Xlinker "$runtime" -Xlinker -lstdc++ >&2
fi
bin=$scratch/release/gvae-fuzz

# A failed property calls fatalError: let libFuzzer's handler save the input, not the
# Swift backtracer (which also keeps the pipe open while it symbolicates).
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:handle_abort=1:allocator_may_return_null=1}
export OPENBLAS_NUM_THREADS=1

declare -A maxlen
while read -r name len; do maxlen[$name]=$len; done < <("$bin" --list)

rows=()
status=0
for spec in "${harnesses[@]}"; do
  h=${spec%%:*}
  time_h=$seconds
  [ "$spec" != "$h" ] && time_h=${spec#*:}
  [ -n "${maxlen[$h]:-}" ] || { echo "fuzz.sh: unknown harness $h" >&2; exit 2; }
  work=$scratch/corpus/$h
  crashes=Fuzz/crashes/$h
  log=$scratch/logs/$h.log
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  cp -n Fuzz/corpus/"$h"/* "$work"/ 2>/dev/null || true
  before=$(find "$crashes" -type f | wc -l)
  dict=()
  [ -f Fuzz/dict/"$h".dict ] && dict=(-dict=Fuzz/dict/"$h".dict)
  echo "fuzz.sh: $h for ${time_h}s (max_len ${maxlen[$h]}, $jobs job(s))" >&2
  # The readers must answer within a second; 10 s allows for ASan and cold caches.
  flags=(-max_total_time="$time_h" -max_len="${maxlen[$h]}" -timeout=10 -rss_limit_mb=2048
    -malloc_limit_mb=2048 -artifact_prefix="$crashes/" -print_final_stats=1 "${dict[@]}")
  if [ "$jobs" -gt 1 ]; then
    flags+=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  # shellcheck disable=SC2086
  "$bin" "$h" "$work" "${flags[@]}" ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=1
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{s += $2} END {print s + 0}' || true)
  if [ "$execs" = 0 ]; then  # fork mode prints no final stats; take the last status line
    execs=$( (grep -o '^#[0-9]*' "$log" || true) | tail -1 | tr -d '#')
  fi
  # Long regression inputs are replayed whole (max_len limits mutation, not replay).
  regressions=(Fuzz/regressions/"$h"/*)
  replay="-"
  if [ -e "${regressions[0]}" ]; then
    if "$bin" "$h" "${regressions[@]}" >>"$log" 2>&1; then replay="ok ${#regressions[@]}"; else
      replay="FAIL"
      status=1
    fi
  fi
  after=$(find "$crashes" -type f | wc -l)
  rows+=("$h ${execs:-0} $(find "$work" -type f | wc -l) $((after - before)) $replay")
done

printf '\n%-16s %12s %8s %8s %12s\n' harness executions corpus crashes regressions
total=0
for r in "${rows[@]}"; do
  read -r h e c k rep <<<"$r"
  printf '%-16s %12s %8s %8s %12s\n' "$h" "$e" "$c" "$k" "$rep"
  total=$((total + e))
done
printf '%-16s %12s\n' total "$total"
[ $status -eq 0 ] || echo "fuzz.sh: crashes or failures; see $scratch/logs and Fuzz/crashes" >&2
exit $status
