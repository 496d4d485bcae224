"""The processor publishes every report on a PUB socket: any number of viewers, none of
which can hold the processor up."""

from __future__ import annotations

import json
from pathlib import Path

import zmq

from operando.protocols.streams import REPORT_TOPIC
from operando.simulators import launcher


def _probe_until(docs: zmq.Socket, sockets: list[zmq.Socket], token: str) -> list[dict]:
    """Send probes until every socket has the probe with ``token``; their messages."""
    got: dict[int, dict] = {}
    for _ in range(500):
        docs.send(b" probe " + token.encode())
        for k, sock in enumerate(sockets):
            while k not in got and sock.poll(20):
                topic, body = sock.recv_multipart()
                msg = json.loads(body)
                assert topic == REPORT_TOPIC
                if msg.get("token") == token:
                    got[k] = msg
        if len(got) == len(sockets):
            return [got[k] for k in range(len(sockets))]
    raise AssertionError(f"probe {token} reached {len(got)} of {len(sockets)} viewers")


def test_every_viewer_gets_the_reports_and_a_stalled_one_holds_nothing_up(
    tmp_path: Path,
) -> None:
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
    proc = launcher.start_processor("", addr, tmp_path, bins=50)
    try:
        assert proc.info["publish"].startswith("tcp://127.0.0.1:")
        viewers = []
        for hwm in (0, 0, 10):  # the third one is never read
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.RCVHWM, hwm)
            sub.setsockopt(zmq.SUBSCRIBE, REPORT_TOPIC)
            sub.connect(proc.info["publish"])
            viewers.append(sub)
        docs = ctx.socket(zmq.PUB)
        docs.setsockopt(zmq.SNDHWM, 0)
        docs.connect(proc.info["docs"])
        first = _probe_until(docs, viewers, "first")
        assert all(m["event"] == "probe" for m in first)
        for k in range(5000):  # far past the stalled viewer's queue
            docs.send(b" probe n" + str(k).encode())
        last = _probe_until(docs, viewers[:2], "last")  # the others still get everything
        assert [m["token"] for m in last] == ["last", "last"]
        seen = set()
        while results.poll(5000):  # and the session's PUSH got every probe, in order
            msg = results.recv_json()
            seen.add(msg.get("token"))
            if msg.get("token") == "last":
                break
        assert {f"n{k}" for k in range(5000)} <= seen
    finally:
        proc.stop()
        ctx.destroy(linger=0)
