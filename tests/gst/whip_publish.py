#!/usr/bin/python3
"""A WHIP publisher on GStreamer's webrtcbin (a WebRTC stack no one here
wrote), for the interop tests: VP8 test video and an Opus tone, one complete
offer POSTed to the WHIP endpoint (RFC 9725), the answer applied, media for
a while, then DELETE on the resource.

Usage: whip_publish.py URL TOKEN LOCAL_IP SECONDS
Prints one line per step; exits 0 after a clean DELETE, 1 on any failure.
GStreamer 1.22 (Debian 12) has no WHIP element, hence these few lines.

webrtcbin's own DTLS certificate is RSA, which the server's DTLS (str0m
0.25 on dimpl 0.9) refuses; this script gives it an ECDSA one (see
on_deep_element_added). Run by tests/e2e/gstreamer.rs.
"""

import base64
import hashlib
import itertools
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

url, token, local_ip, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
Gst.init(None)
loop = GLib.MainLoop()
state = {"resource": None, "failed": None}

pipe = Gst.parse_launch(
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=15 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
    "! rtpopuspay pt=111 "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
)
w = pipe.get_by_name("w")
# Keep the ICE objects referenced (1.22's getter steals a reference).
ice = w.get_property("ice-agent")
agent = ice.get_property("agent")
agent.set_property("upnp", False)
# Keepalives as binding requests: the server (ICE lite) counts a path as
# alive while it hears binding requests, and this libnice (0.1.21, consent
# freshness off in webrtcbin 1.22) sends only indications otherwise.
agent.set_property("keepalive-conncheck", True)
addr = Nice.Address.new()
addr.set_from_string(local_ip)
agent.add_local_address(addr)


def ecdsa_pem():
    """A fresh self-signed P-256 certificate and its key, in one PEM string
    (what GStreamer's dtls elements take in their `pem` property)."""
    return subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "-", "-out", "-", "-subj", "/CN=webrtcbin", "-days", "7"],
        check=True, capture_output=True, text=True,
    ).stdout


# webrtcbin's DTLS certificate is RSA (its dtlsagent makes one, with no
# setting to change it), and the server's DTLS speaks ECDSA only. Each DTLS
# transport is a dtlssrtpdec/dtlssrtpenc pair sharing one DTLS connection,
# looked up by a connection id. Setting `pem` on the decoder rebuilds its
# connection under the id it already registered, which GStreamer refuses
# (a critical, and the encoder would keep the old RSA connection); so the
# decoder gets the ECDSA `pem` and then a fresh connection id, and its
# encoder (created with it, before either leaves NULL) the same id. The
# offer's a=fingerprint is still the RSA certificate's (webrtcbin reads it
# from the transport, which does not follow the decoder's new `pem`), so
# post_offer puts the ECDSA certificate's in its place.
PEM = ecdsa_pem()


def sha256_fingerprint(pem):
    b64 = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    digest = hashlib.sha256(base64.b64decode("".join(b64.group(1).split()))).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


FINGERPRINT = "a=fingerprint:sha-256 " + sha256_fingerprint(PEM)
ids = {"dtlssrtpdec": itertools.count(), "dtlssrtpenc": itertools.count()}


def on_deep_element_added(_bin, _sub_bin, element):
    factory = element.get_factory()
    name = factory.get_name() if factory else ""
    if name not in ids:
        return
    cid = "convene-ecdsa-%d" % next(ids[name])
    if name == "dtlssrtpdec":
        element.set_property("pem", PEM)
    element.set_property("connection-id", cid)
    print("dtls", name, cid, flush=True)


pipe.connect("deep-element-added", on_deep_element_added)


def fail(why):
    print("FAILED:", why, flush=True)
    state["failed"] = why
    loop.quit()
    return False


def request(method, target, body=None, content_type=None):
    req = urllib.request.Request(target, data=body, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def post_offer():
    offer = w.get_property("local-description").sdp.as_text()
    offer = re.sub(r"(?m)^a=fingerprint:.*$", lambda _m: FINGERPRINT, offer.replace("\r\n", "\n"))
    offer = offer.replace("\n", "\r\n")
    status, headers, body = request("POST", url, offer.encode(), "application/sdp")
    print("POST", status, flush=True)
    if status != 201:
        return fail("the WHIP POST answered %d: %s" % (status, body))
    location = headers.get("Location") or headers.get("location")
    state["resource"] = urllib.parse.urljoin(url, location)
    ok, sdp = GstSdp.SDPMessage.new_from_text(body)
    if ok != GstSdp.SDPResult.OK:
        return fail("the answer is not SDP")
    answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
    w.emit("set-remote-description", answer, Gst.Promise.new())
    GLib.timeout_add_seconds(seconds, finish)
    return False


def on_gathering(element, _pspec):
    if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        # WHIP takes one complete offer: post once every candidate is in it.
        if state["resource"] is None and state["failed"] is None:
            GLib.idle_add(post_offer)


def on_offer(promise, _):
    reply = promise.get_reply()
    offer = reply.get_value("offer")
    w.emit("set-local-description", offer, Gst.Promise.new())


def on_negotiation_needed(element):
    promise = Gst.Promise.new_with_change_func(on_offer, None)
    element.emit("create-offer", None, promise)


def finish():
    status, _, body = request("DELETE", state["resource"])
    print("DELETE", status, flush=True)
    if status != 200:
        return fail("DELETE answered %d: %s" % (status, body))
    loop.quit()
    return False


def on_state(element, _pspec):
    print("connection", element.get_property("connection-state").value_nick, flush=True)


w.connect("on-negotiation-needed", on_negotiation_needed)
w.connect("notify::ice-gathering-state", on_gathering)
w.connect("notify::connection-state", on_state)


# Only send: a WHIP publisher receives nothing.
def on_new_transceiver(element, transceiver):
    transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)


w.connect("on-new-transceiver", on_new_transceiver)
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect("message::error", lambda _b, m: fail(str(m.parse_error())))
pipe.set_state(Gst.State.PLAYING)
GLib.timeout_add_seconds(seconds + 60, lambda: fail("timed out"))
loop.run()
pipe.set_state(Gst.State.NULL)
sys.exit(1 if state["failed"] else 0)
