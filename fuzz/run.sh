#!/usr/bin/env bash
# Runs every fuzz target for a while, from its seed corpus.
#   fuzz/run.sh                 # 20 s per target (what CI-sized runs use)
#   FUZZ_SECS=3600 fuzz/run.sh  # one hour per target
#   FUZZ_RUNS=10000000 fuzz/run.sh  # ten million executions per target
#   FUZZ_DEV=1 fuzz/run.sh      # an unoptimised build (faster to build)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`;
# installed here when missing). Prints one summary line per target; exits
# non-zero on the first crash (the input is kept in fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
secs=${FUZZ_SECS:-20}
[ -n "${FUZZ_RUNS:-}" ] && [ -z "${FUZZ_SECS:-}" ] && secs=86400
extra=()
[ -n "${FUZZ_RUNS:-}" ] && extra+=(-runs="$FUZZ_RUNS")
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
# FUZZ_DEV=1 builds without optimisation (still with the sanitizer): quicker
# to build, fewer executions a second; what scripts/test.sh's
# short smoke run uses. Long runs use the default release build.
profile=()
[ "${FUZZ_DEV:-0}" = 1 ] && profile=(--dev)
cargo +nightly fuzz build "${profile[@]}"
mkdir -p corpus
for t in $targets; do
  mkdir -p "corpus/$t"
  [ -d "seeds/$t" ] && cp -n seeds/$t/* "corpus/$t/" 2>/dev/null || true
  log=$(mktemp)
  start=$(date +%s)
  if ! cargo +nightly fuzz run "${profile[@]}" "$t" "corpus/$t" -- -max_total_time="$secs" "${extra[@]}" \
      -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "FUZZ $t: CRASH (see fuzz/artifacts/$t)"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "FUZZ $t: $execs executions in $(( $(date +%s) - start )) s, 0 crashes, coverage $cov edges, corpus $(ls "corpus/$t" | wc -l)"
  rm -f "$log"
done
