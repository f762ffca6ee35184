#!/usr/bin/env bash
# Runs every test of the workspace, installing the system packages the tests
# need when they are missing. Used by CI (.ci/run) and by developers alike.
#
# The tests run inside a private network namespace (`unshare -n`) that has
# only loopback and a veth pair carrying 127.0.0.2/32: no test traffic can
# leave the machine, and WebRTC stacks that refuse plain loopback (Chromium)
# still find an address. Media is bound and advertised on 127.0.0.2
# (CONVENE_TEST_MEDIA_IP); HTTP stays on 127.0.0.1. Needs root (or sudo).
#
# Arguments are passed to `cargo test`, e.g.
#   scripts/test.sh -p convene-tests --test e2e browser
# Without arguments, the REST suites then run once more against PostgreSQL
# (CONVENE_TEST_DB=postgres). With arguments, set CONVENE_TEST_DB=postgres
# yourself to run them there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
[ -x "${CONVENE_TEST_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
[ -x "${CONVENE_TEST_FIREFOX:-/usr/bin/firefox-esr}" ] || missing+=(firefox-esr)   # interop with Gecko's WebRTC
# convene-appliance: libvpx (VP8), libopus, alsa-lib; ffprobe checks its recordings.
pkg-config --exists vpx 2>/dev/null || missing+=(libvpx-dev)
pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
pkg-config --exists alsa 2>/dev/null || missing+=(libasound2-dev)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v c++ >/dev/null 2>&1 || missing+=(g++)   # openh264 and libwebm are C++
pkg-config --exists webrtc-audio-processing 2>/dev/null || missing+=(libwebrtc-audio-processing-dev)   # the appliance's echo canceller and noise suppressor (WebRTC APM)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # opus's build script
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || missing+=(libclang-dev)   # v4l's bindgen
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)   # library PDFs become slides
command -v pocketsphinx_continuous >/dev/null 2>&1 || missing+=(pocketsphinx)   # built-in transcription engine
[ -d /usr/share/pocketsphinx/model/en-us ] || missing+=(pocketsphinx-en-us)   # its US English model
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)   # speech for the transcription tests
command -v nft >/dev/null 2>&1 || missing+=(nftables)   # TURN tests block direct UDP to the media port
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)   # the store on PostgreSQL (tests/pg.rs starts a cluster)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)   # cluster nodes (tests/redis.rs starts one per test)
# GStreamer webrtcbin publishing over WHIP (tests/gst/whip_publish.py, tests/e2e/gstreamer.rs)
gst="/usr/lib/$(uname -m)-linux-gnu/gstreamer-1.0"
[ -e "$gst/libgstvideotestsrc.so" ] || missing+=(gstreamer1.0-plugins-base)   # videotestsrc, audiotestsrc, opusenc
[ -e "$gst/libgstvpx.so" ] || missing+=(gstreamer1.0-plugins-good)   # vp8enc, rtpvp8pay, rtpopuspay
[ -e "$gst/libgstwebrtc.so" ] || missing+=(gstreamer1.0-plugins-bad)   # webrtcbin, dtls, srtp
[ -e "$gst/libgstnice.so" ] || missing+=(gstreamer1.0-nice)   # webrtcbin's ICE
[ -e /usr/lib/python3/dist-packages/gi/__init__.py ] || missing+=(python3-gi)
[ -e /usr/lib/python3/dist-packages/aiortc/__init__.py ] || missing+=(python3-aiortc)   # tests/aiortc: RTCP of a test's choosing under real SRTP keys (panic_containment)
for typelib in Gst-1.0:gir1.2-gstreamer-1.0 GstSdp-1.0:gir1.2-gst-plugins-base-1.0 \
  GstWebRTC-1.0:gir1.2-gst-plugins-bad-1.0 Nice-0.1:gir1.2-nice-0.1; do
  compgen -G "/usr/lib/*/girepository-1.0/${typelib%%:*}.typelib" >/dev/null || missing+=("${typelib#*:}")
done
command -v openssl >/dev/null 2>&1 || missing+=(openssl)   # the script's ECDSA DTLS certificate
[ -e /usr/lib/baresip/modules/sndfile.so ] || missing+=(baresip-core)   # a SIP phone calling the bridge (tests/e2e/phone_baresip.rs)
# Without its recommended Docker engine: the tests only resolve the Compose file.
lean=()
command -v docker-compose >/dev/null 2>&1 || lean+=(docker-compose)   # packaging/compose.yaml (tests/e2e/cluster/compose.rs)
if [ ${#missing[@]} -gt 0 ] || [ ${#lean[@]} -gt 0 ]; then
  echo "installing missing system packages: ${missing[*]} ${lean[*]}"
  $SUDO apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
  if [ ${#lean[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}"
  fi
fi

# Free disk space where the build and the tests write (the workspace, and
# $TMPDIR for the tests' databases, recordings, browser profiles and
# PostgreSQL clusters). A full disk fails dozens of unrelated tests at once
# ("database or disk is full", a server that never prints its address), so
# the figure is printed before the tests and again after a failure, where the
# end of the log shows it.
disk_left='df -h --output=avail,target "$PWD" "${TMPDIR:-/tmp}" | awk '\''NR > 1 && !seen[$2]++ { print "disk: " $1 " free on " $2 }'\'''
export disk_left
eval "$disk_left"

# Build everything first, with the network (binaries are started by the
# end-to-end tests; nothing is fetched inside the namespace).
cargo build --workspace --bins --tests --locked

# A full run (no arguments) also runs every fuzz target for a short time
# (fuzz/run.sh: cargo-fuzz on the nightly toolchain, installed from crates.io
# when missing), so that a parser regression shows here. CONVENE_TEST_FUZZ_SECS
# sets the time per target (default 5; 0 skips it on a developer machine).
# The smoke run uses an unoptimised fuzz build (FUZZ_DEV=1): quicker to
# build, and 5 s of it still replays every seed.
#
# It runs beside the tests, at idle priority (SCHED_IDLE, idle I/O class):
# its build (~10 CPU-minutes, dependencies compiled again with the
# sanitizer) and its runs take only CPU the tests leave unused, and the
# end-to-end tests, which mostly wait on browsers and the network, leave
# plenty; a task the tests wake takes the CPU back at once. In front of the
# tests it made CI's full run ~7 minutes longer. Its output comes after the
# tests; it fails the run like a test does. Outside the namespace: the
# first run fetches cargo-fuzz and the fuzz workspace's crates.
fuzz_secs=${CONVENE_TEST_FUZZ_SECS:-5}
fuzz_pid=""
if [ $# -eq 0 ] && [ "$fuzz_secs" != 0 ]; then
  fuzz_log=$(mktemp)
  idle=()
  command -v chrt >/dev/null 2>&1 && idle+=(chrt --idle 0)
  command -v ionice >/dev/null 2>&1 && idle+=(ionice -c 3)
  # A process group of its own, so that a failed test run can stop it whole.
  setsid "${idle[@]}" env FUZZ_SECS="$fuzz_secs" FUZZ_DEV=1 fuzz/run.sh >"$fuzz_log" 2>&1 &
  fuzz_pid=$!
  echo "fuzz smoke run started beside the tests (idle priority, pid $fuzz_pid); its output follows them"
fi

# Inside the namespace: loopback up, the veth pair with 127.0.0.2/32, then
# the tests. Any failure here fails the run.
inner='
set -euo pipefail
ip link set lo up
ip link add cvn0 type veth peer name cvn1
# No IPv6 link-local addresses on the pair: they would arrive a second or two
# after "up" (duplicate address detection), and a browser that sees an address
# appear aborts its page loads with ERR_NETWORK_CHANGED.
ip link set cvn0 addrgenmode none
ip link set cvn1 addrgenmode none
ip addr add 127.0.0.2/32 dev cvn0
ip link set cvn0 up
ip link set cvn1 up
# Start once the pair has settled (carrier up on both ends).
for _ in $(seq 50); do
  grep -qx 1 /sys/class/net/cvn0/carrier 2>/dev/null && grep -qx 1 /sys/class/net/cvn1/carrier 2>/dev/null && break
  sleep 0.1
done
export CONVENE_TEST_MEDIA_IP=127.0.0.2
# The message of a failing test, not 40 frames of tokio, is what the CI excerpt of
# the log shows; CONVENE_TEST_BACKTRACE=1 brings the frames back.
export RUST_BACKTRACE="${CONVENE_TEST_BACKTRACE:-0}"
if [ $# -gt 0 ]; then
  exec cargo test --workspace --locked --offline "$@"
fi
# A failing run ends with each failed test and the first line of its panic:
# the end of the log is what CI shows, and the sections of the tests can be
# thousands of lines above it, among the logs of the servers.
log=$(mktemp)
trap '\''rm -f "$log"'\'' EXIT
failed() {
  rc=$?
  eval "$disk_left"
  echo "failed tests, and the first line of each panic:"
  awk '\''/^---- .* stdout ----$/ { name = $2; next }
       /panicked at/ && name != "" { getline msg; print "  " name ": " substr(msg, 1, 300); name = "" }'\'' "$log"
  exit $rc
}
cargo test --workspace --locked --offline 2>&1 | tee "$log" || failed
# The REST suites once more with the store on PostgreSQL (every server gets
# a fresh database in the cluster tests/pg.rs starts); browser and media
# suites do not touch the store differently and are not repeated.
# (--workspace: the same feature set, so nothing is compiled again.)
CONVENE_TEST_DB=postgres cargo test --workspace --test e2e --locked --offline -- \
  api_ admin:: admin_history:: guest_links:: libraries:: room_access:: room_password:: \
  summaries:: transcripts:: webhooks:: fleet:: postgres:: admin_accounts:: breakouts::breakouts_over_rest \
  breakouts_scope::a_restart breakouts_scope::questions \
  --skip browser --skip client_ --skip fleet_appliance 2>&1 | tee "$log" \
  || failed
'
if [ -n "$SUDO" ]; then as_root=(sudo --preserve-env env "PATH=$PATH"); else as_root=(); fi
if ! "${as_root[@]}" unshare -n true 2>/dev/null; then
  echo "error: cannot create a network namespace (unshare -n): the tests need one" >&2
  echo "       (run as root, or with sudo, on a kernel that allows network namespaces)" >&2
  exit 1
fi
rc=0
"${as_root[@]}" unshare -n bash -c "$inner" bash "$@" || rc=$?
if [ -n "$fuzz_pid" ]; then
  if [ "$rc" -ne 0 ]; then
    # The tests failed: their summary above is what matters; stop the fuzz run.
    kill -- "-$fuzz_pid" 2>/dev/null || true
    wait "$fuzz_pid" 2>/dev/null || true
    rm -f "$fuzz_log"
    echo "fuzz smoke run stopped: the tests failed"
    exit "$rc"
  fi
  echo "waiting for the fuzz smoke run (pid $fuzz_pid)"
  fuzz_rc=0
  wait "$fuzz_pid" || fuzz_rc=$?
  cat "$fuzz_log"
  rm -f "$fuzz_log"
  eval "$disk_left"
  if [ "$fuzz_rc" -ne 0 ]; then
    echo "the fuzz smoke run failed (exit $fuzz_rc): see its output above" >&2
    exit "$fuzz_rc"
  fi
fi
exit "$rc"
