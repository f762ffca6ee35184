#!/usr/bin/python3
"""A WHEP viewer on aiortc (Debian's python3-aiortc) that, once media flows,
sends RTCP of its choosing under the session's SRTP keys: first a
well-formed transport-wide congestion control report, then, when told on
standard input, a report whose delta sizes do not match its status chunks
(a run of length 0 ahead of two large-delta runs), which makes str0m 0.25
panic ("Incorrect large delta size") while it applies the report. Run by
tests/e2e/panic_containment.rs: the server must close this one peer and
nothing else.

Usage: whep_twcc.py URL TOKEN
Prints one line per step: `answer LOCATION`, `media PACKETS`, `valid-sent`,
then after a line `go` on standard input `hostile-sent`, and finally
`state STATE` after a line `end`. Exits 1 on a failure before that.

aiortc 1.4 offers no transport-wide sequence number extension; it is added
to its table so that the server numbers what it sends here (str0m applies
a report only while it has sent numbered packets).
"""

import asyncio
import struct
import sys
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
for kind in ("audio", "video"):
    HEADER_EXTENSIONS[kind].append(RTCRtpHeaderExtensionParameters(id=5, uri=TWCC))

url, token = sys.argv[1], sys.argv[2]


def say(line):
    print(line, flush=True)


def twcc(chunks, deltas, status_count):
    """An RTCP transport-wide feedback packet (RTPFB, FMT 15)."""
    body = struct.pack("!IIHH", 0x11223344, 0x55667788, 0, status_count)
    body += b"\x00\x00\x00" + b"\x01"  # reference time, feedback count
    body += b"".join(struct.pack("!H", c) for c in chunks) + bytes(deltas)
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!BBH", 0x80 | 15, 205, (len(body) + 4) // 4 - 1) + body


async def main():
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    req = urllib.request.Request(
        url,
        data=pc.localDescription.sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    loop = asyncio.get_running_loop()
    res = await loop.run_in_executor(None, lambda: urllib.request.urlopen(req, timeout=10))
    answer = res.read().decode()
    say(f"answer {res.headers.get('Location')}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    dtls = pc.getTransceivers()[0].receiver.transport
    # Media arrives (the server has numbered packets for this peer).
    for _ in range(200):
        if dtls._RTCDtlsTransport__rx_packets > 20:
            break
        await asyncio.sleep(0.1)
    else:
        say(f"no media: state {pc.connectionState}")
        sys.exit(1)
    say(f"media {dtls._RTCDtlsTransport__rx_packets}")

    # One status, not received: well-formed, harmless.
    await dtls._send_rtp(twcc([0x0001], [], 1))
    await asyncio.sleep(1.0)
    say("valid-sent")

    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        sys.exit(1)
    # Run(small delta, 0), Run(large, 1), Run(large, 1): the parser reads
    # two large deltas, the iterator wants a small one first.
    await dtls._send_rtp(twcc([0x2000, 0x4001, 0x4001], [0, 1, 0], 2))
    say("hostile-sent")

    await loop.run_in_executor(None, sys.stdin.readline)
    say(f"state {pc.connectionState}")
    await pc.close()


asyncio.run(main())
