#!/usr/bin/env bash
# Convene and Janus side by side, with the same load generator and scenario.
#
# Installs what is missing (janus, libssl-dev, fonts-dejavu-core) from
# Debian, builds `convene` and `convene-load` (release, with the OpenSSL
# DTLS backend that pins the SRTP profile), writes a minimal Janus config
# into a temp dir, and inside a private network namespace (loopback + a veth
# pair carrying 127.0.0.2/32; every party binds 127.0.0.2, nothing leaves
# the machine) measures the kernel's UDP send path alone (the floor), then
# runs S1 (capacity search) and S4 (100 concurrent joins; three storms, their
# median)
# against Janus and Convene alternately: each SFU pinned with taskset to
# CPU 0, the generator to CPU 1. Main pass: SRTP AEAD_AES_128_GCM; second
# pass: AES_CM_128_HMAC_SHA1_80. Then writes docs/benchmarks.{md,json,png}
# (convene-load --compare).
#
#   benches/compare-janus.sh                 # the documented run (60 s windows)
#   benches/compare-janus.sh --quick         # a few minutes, for development
#   benches/compare-janus.sh --window 20 --passes aes128gcm --steps 5,20,40
#   benches/compare-janus.sh --out /tmp/report   # anywhere but docs/
#   benches/compare-janus.sh --keep-runs /tmp/runs   # keep the raw runs (JSON + log)
#   benches/compare-janus.sh --s4-storms 1   # one S4 storm per SFU and pass
#   CONVENE_MEDIA_WRITE_PATH=own benches/compare-janus.sh   # Convene on its own write path
#
# Needs root (apt-get, unshare -n) and 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${CARGO_TARGET_DIR:=$ROOT/target}"
export CARGO_TARGET_DIR

INVOCATION="${CONVENE_MEDIA_BWE:+CONVENE_MEDIA_BWE=$CONVENE_MEDIA_BWE }${CONVENE_MEDIA_WRITE_PATH:+CONVENE_MEDIA_WRITE_PATH=$CONVENE_MEDIA_WRITE_PATH }benches/compare-janus.sh $*"
WINDOW=60
WARMUP=5
STEPS=10,25,50,75,100,125,150,175,200
PASSES=aes128gcm,aes128cm
CM_WINDOW=""
S4_JOINS=100
S4_STORMS=3
ROUNDS=1
OUT=docs
SKIP_BUILD=0
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) WINDOW=5; WARMUP=2; STEPS=5,20,50; S4_JOINS=30; S4_STORMS=1; shift ;;
    --window) WINDOW=$2; shift 2 ;;
    --cm-window) CM_WINDOW=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --passes) PASSES=$2; shift 2 ;;
    --s4-joins) S4_JOINS=$2; shift 2 ;;
    --s4-storms) S4_STORMS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep-runs) KEEP=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$CM_WINDOW" ] || CM_WINDOW=$WINDOW

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
command -v janus >/dev/null 2>&1 || missing+=(janus)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "warning: fewer than 2 CPUs; SFU and generator will share a core" >&2
  SFU_CPU=0; GEN_CPU=0
else
  SFU_CPU=0; GEN_CPU=1
fi

if [ "$SKIP_BUILD" != 1 ]; then
  cargo build --release -p convene-server -p convene-benches \
    --features convene-benches/openssl-dtls --bins
fi
LOAD="$CARGO_TARGET_DIR/release/convene-load"
CONVENE="$CARGO_TARGET_DIR/release/convene"
JANUS_LIB=$(dirname "$(find /usr/lib -name libjanus_videoroom.so -path '*plugins*' | head -1)")
JANUS_LIB=$(dirname "$JANUS_LIB")

WORK=$(mktemp -d /tmp/compare-janus.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/janus" "$WORK/runs"
J=$WORK/janus
# Every plugin but the VideoRoom, every transport but HTTP and WebSockets.
disable_plugins=$(cd "$JANUS_LIB/plugins" && ls libjanus_*.so | grep -v videoroom | paste -sd, -)
disable_events=$(cd "$JANUS_LIB/events" 2>/dev/null && ls libjanus_*.so | paste -sd, - || true)
disable_loggers=$(cd "$JANUS_LIB/loggers" 2>/dev/null && ls libjanus_*.so | paste -sd, - || true)
cat > "$J/janus.jcfg" <<EOF
general: {
	configs_folder = "$J"
	plugins_folder = "$JANUS_LIB/plugins"
	transports_folder = "$JANUS_LIB/transports"
	events_folder = "$JANUS_LIB/events"
	loggers_folder = "$JANUS_LIB/loggers"
	log_to_stdout = true
	debug_level = 3
	debug_colors = false
	interface = "127.0.0.2"
	session_timeout = 120
	event_loops = 1
	hide_dependencies = true
}
certificates: {
}
media: {
	ipv6 = false
	rtp_port_range = "20000-40000"
	no_media_timer = 5
}
nat: {
	nice_debug = false
	ice_lite = true
	ice_enforce_list = "127.0.0.2"
}
plugins: {
	disable = "$disable_plugins"
}
transports: {
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}
loggers: {
	disable = "$disable_loggers"
}
events: {
	broadcast = false
	disable = "$disable_events"
}
EOF
cat > "$J/janus.transport.websockets.jcfg" <<'EOF'
general: {
	json = "plain"
	ws = true
	ws_port = 8188
	ws_ip = "127.0.0.2"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
EOF
cat > "$J/janus.transport.http.jcfg" <<'EOF'
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = 8088
	ip = "127.0.0.2"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
EOF
cat > "$J/janus.plugin.videoroom.jcfg" <<'EOF'
general: {
}
room-1234: {
	description = "convene-load"
	publishers = 100
	bitrate = 0
	fir_freq = 0
	audiocodec = "opus"
	videocodec = "vp8"
}
EOF

inner='
set -euo pipefail
ip link set lo up
ip link add cjb0 type veth peer name cjb1
ip addr add 127.0.0.2/32 dev cjb0
ip link set cjb0 up
ip link set cjb1 up
ulimit -n 65536 2>/dev/null || true
echo "== udp floor (the kernel send path alone)" >&2
taskset -c "$GEN_CPU" "$LOAD" --udp-floor 100 --server-cpu "$SFU_CPU" --generator-cpu "$GEN_CPU" \
  --local-ip 127.0.0.2 --json-out "$WORK/runs/udp-floor.json" >/dev/null \
  || echo "udp floor failed (exit $?)" >&2
sleep 1
IFS=, read -ra passes <<< "$PASSES"
for pass in "${passes[@]}"; do
  w=$WINDOW; [ "$pass" = aes128cm ] && w=$CM_WINDOW
  for round in $(seq 1 "$ROUNDS"); do
    suffix=""; [ "$round" -gt 1 ] && suffix="-r$round"
    for sfu in janus convene; do
      if [ "$sfu" = janus ]; then spawn=(--spawn-janus "$J"); else spawn=(--spawn-server "$CONVENE"); fi
      echo "== $sfu, $pass, round $round (window $w s)" >&2
      taskset -c "$GEN_CPU" "$LOAD" --sfu "$sfu" "${spawn[@]}" \
        --server-cpu "$SFU_CPU" --generator-cpu "$GEN_CPU" --local-ip 127.0.0.2 \
        --srtp "$pass" --scenario s1,s4 --s1-steps "$STEPS" --s1-keep-going \
        --window "$w" --warmup "$WARMUP" --s4-joins "$S4_JOINS" --s4-storms "$S4_STORMS" \
        --json-out "$WORK/runs/$sfu-$pass$suffix.json" \
        || echo "$sfu $pass: convene-load failed (exit $?)" >&2
      sleep 2
    done
  done
done
'
export PASSES WINDOW CM_WINDOW WARMUP STEPS S4_JOINS S4_STORMS ROUNDS LOAD CONVENE J WORK SFU_CPU GEN_CPU
if [ -n "$SUDO" ]; then as_root=(sudo --preserve-env env "PATH=$PATH"); else as_root=(); fi
"${as_root[@]}" unshare -n bash -c "$inner" 2>&1 | tee "$WORK/log.txt" >&2 || true

if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; cp "$WORK"/runs/*.json "$WORK/log.txt" "$KEEP"/; fi
"$LOAD" --compare "$WORK/runs" --write-report "$OUT" --compare-script "$INVOCATION"
echo "report: $OUT/benchmarks.md"
