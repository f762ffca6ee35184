#!/usr/bin/env bash
# One room over two Convene nodes (issue 20): docs/benchmarks-cluster.{md,json}.
#
# Starts a throwaway PostgreSQL cluster and Redis server (own data dirs, free
# ports, stopped afterwards), builds `convene` and `convene-load` (release),
# and runs `convene-load --cluster-db ... --cluster-redis ...`: two nodes
# with media links, both pinned to CPU 0, the generator to CPU 1; S1 (one
# publisher on node 1, N subscribers) with the subscribers' peers on node 1,
# split over both nodes, and all on node 2. See benches/src/cluster.rs.
#
#   benches/cluster.sh                      # the documented run
#   benches/cluster.sh --quick              # a minute or two, for development
#   benches/cluster.sh --window 20 --steps 10,25,50 --out /tmp/report
#
# Needs postgresql and redis-server (Debian packages; installed when missing)
# and 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${CARGO_TARGET_DIR:=$ROOT/target}"
export CARGO_TARGET_DIR

WINDOW=20
WARMUP=5
STEPS=10,25,50
OUT=docs
SKIP_BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) WINDOW=5; WARMUP=2; STEPS=5,20; shift ;;
    --window) WINDOW=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "warning: fewer than 2 CPUs; the nodes and the generator share a core" >&2
  NODE_CPU=0; GEN_CPU=0
else
  NODE_CPU=0; GEN_CPU=1
fi

if [ "$SKIP_BUILD" != 1 ]; then
  cargo build --release -p convene-server -p convene-benches --bins
fi
LOAD="$CARGO_TARGET_DIR/release/convene-load"
CONVENE="$CARGO_TARGET_DIR/release/convene"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/convene-cluster-bench.XXXXXX)
PGBIN=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK"
PGPORT=$(free_port)
REDISPORT=$(free_port)
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" stop -m immediate >/dev/null 2>&1 || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U convene --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U convene convene
redis-server --port "$REDISPORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
sleep 0.5

mkdir -p "$OUT"
taskset -c "$GEN_CPU" "$LOAD" \
  --spawn-server "$CONVENE" --server-cpu "$NODE_CPU" --generator-cpu "$GEN_CPU" \
  --local-ip 127.0.0.1 \
  --cluster-db "postgres://convene@127.0.0.1:$PGPORT/convene" \
  --cluster-redis "redis://127.0.0.1:$REDISPORT/0" \
  --s1-steps "$STEPS" --window "$WINDOW" --warmup "$WARMUP" \
  --write-report "$OUT"
