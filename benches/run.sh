#!/usr/bin/env bash
# Builds the server and the load generator in release mode, then runs the
# scenarios with the server pinned to CPU 0 and the generator to CPU 1, and
# writes docs/benchmarks-convene.{md,json} (docs/benchmarks.md is the
# side-by-side run with Janus: benches/compare-janus.sh). Extra arguments go
# to convene-load.
#
#   benches/run.sh                         # the default run (S1, S2, S4 + micro-benchmarks)
#   benches/run.sh --scenario s1 --s1-steps 1,5   # anything else
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=target}"
export CARGO_TARGET_DIR
cargo build --release --locked -p convene-server -p convene-benches --bins
if [[ "${SKIP_MICRO:-}" != 1 ]]; then
  cargo bench --locked -p convene-benches --bench forwarding
fi
args=(--spawn-server "$CARGO_TARGET_DIR/release/convene" --write-report docs/
      --report-name benchmarks-convene
      --criterion "$CARGO_TARGET_DIR/criterion")
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  args+=(--server-cpu 0 --generator-cpu 1)
  exec taskset -c 1 "$CARGO_TARGET_DIR/release/convene-load" "${args[@]}" \
    --scenario "${SCENARIO:-s1,s2,s4}" "$@"
fi
exec "$CARGO_TARGET_DIR/release/convene-load" "${args[@]}" --scenario "${SCENARIO:-s1,s2,s4}" "$@"
