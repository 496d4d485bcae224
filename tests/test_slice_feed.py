"""Running slices for viewers (#15): the processor publishes the q slices its viewers
subscribe to, at once and after every new row; the viewer keeps them and serves them
when they are newer than the live file."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import zmq
from test_display import live_file

from operando.live_processing.display.app import create_app
from operando.live_processing.display.pages import Pages, frame
from operando.live_processing.display.slices import IDLE_S, RunningSlice, SliceCache, decode
from operando.live_processing.display.state import ViewerState
from operando.live_processing.service.slice_feed import SliceFeed
from operando.live_processing.tomography.incremental_fbp import IncrementalFBP
from operando.live_processing.tomography.sinogram import Sinogram
from operando.protocols.streams import MAX_SLICES, slice_topic

N_A, N_T, N_Q = 8, 17, 6


class Client:
    """GETs straight into the app (ASGI), one event loop per request."""

    def __init__(self, app: object) -> None:
        self.transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    def get(self, url: str) -> httpx.Response:
        async def one() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://v") as c:
                return await c.get(url)

        return asyncio.run(one())


def running_scan() -> SimpleNamespace:
    """What the feed reads of a scan: a real reconstruction and sinogram."""
    return SimpleNamespace(
        uid="u1",
        fbp=IncrementalFBP(np.arange(N_A) * 180.0 / N_A, N_T, N_Q, batch=4),
        sinogram=Sinogram(N_A, N_T, N_Q),
        integrator=SimpleNamespace(q=np.linspace(1, 2, N_Q)),
        last_row_at=0.0,
    )


def add_row(scan: SimpleNamespace, i: int, rng: np.random.Generator) -> None:
    row = rng.random((N_T, N_Q), dtype=np.float32)
    for j in range(N_T):
        scan.sinogram.put(i, j, row[j], 1.0)
    scan.fbp.add(i, row)
    scan.last_row_at = 1000.0 + i


@contextmanager
def xpub_and_sub() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    """An XPUB (the processor's) and a SUB connected to it (a viewer's)."""
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.XPUB), ctx.socket(zmq.SUB)
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.connect(f"tcp://127.0.0.1:{port}")
        yield pub, sub
    finally:
        ctx.destroy(linger=0)


def subscribe(feed: SliceFeed, pub: zmq.Socket, sub: zmq.Socket, scan: object, iq: int) -> None:
    """The viewer subscribes to q ``iq``; the feed reads the subscription off the XPUB."""
    sub.setsockopt(zmq.SUBSCRIBE, slice_topic(iq))
    assert pub.poll(10_000)
    feed.on_subscription(pub.recv(), [scan])


def test_a_subscribed_q_is_published_at_once_and_after_every_row() -> None:
    with xpub_and_sub() as (pub, sub):
        feed, scan, rng = SliceFeed(pub), running_scan(), np.random.default_rng(2)
        for i in range(3):  # rows queued in the reconstruction's batch
            add_row(scan, i, rng)
        subscribe(feed, pub, sub, scan, 3)  # b"\x01slice/3/"
        assert feed.wanted == {3}
        assert sub.poll(10_000)
        first = decode(sub.recv_multipart())
        assert (first.run, first.q, first.projections, first.row_at) == ("u1", 3, 3, 1002.0)
        want = scan.fbp.slice_at(3)
        np.testing.assert_array_equal(first.slice, want)
        np.testing.assert_array_equal(first.sinogram, scan.sinogram.data[:, :, 3])
        assert np.isnan(first.sinogram[3:]).all()  # rows to come
        feed.service([scan])  # no new row: nothing
        assert not sub.poll(200)
        add_row(scan, 3, rng)
        feed.service([scan])
        second = decode(sub.recv_multipart())
        assert second.projections == 4
        full = scan.fbp.result()[:, :, 3]
        np.testing.assert_allclose(second.slice, full, atol=1e-6 * float(np.ptp(full)))
        sub.setsockopt(zmq.UNSUBSCRIBE, slice_topic(3))
        assert pub.poll(10_000)
        feed.on_subscription(pub.recv(), [scan])  # b"\x00slice/3/"
        assert feed.wanted == set()
        add_row(scan, 4, rng)
        feed.service([scan])
        assert feed.published == 2


def test_the_feed_ignores_what_is_not_a_slice_and_serves_at_most_max_slices() -> None:
    ctx = zmq.Context()
    try:
        feed, scan = SliceFeed(ctx.socket(zmq.XPUB)), running_scan()
        for message in (b"", b"\x01report", b"\x01slice/x/", b"\x01slice/12"):
            feed.on_subscription(message, [scan])
        assert feed.wanted == set()
        for iq in range(MAX_SLICES + 3):
            feed.on_subscription(b"\x01" + slice_topic(iq), [scan])
        assert feed.wanted == set(range(MAX_SLICES))
    finally:
        ctx.destroy(linger=0)


def test_the_viewer_subscribes_to_what_pages_look_at_and_lets_idle_q_go() -> None:
    now = [0.0]
    cache = SliceCache(clock=lambda: now[0])
    cache.ask(5)
    cache.ask(7)
    assert cache.changes() == ([5, 7], [])
    assert cache.changes() == ([], [])
    now[0] = IDLE_S / 2
    cache.ask(7)
    now[0] = IDLE_S + 1
    assert cache.changes() == ([], [5])
    for q in range(100, 100 + MAX_SLICES + 2):  # the newest MAX_SLICES only
        now[0] += IDLE_S / 100
        cache.ask(q)
    add, drop = cache.changes()
    assert add == list(range(102, 100 + MAX_SLICES + 2)) and drop == [7]
    image = np.ones((2, 2), np.float32)
    assert cache.put(RunningSlice("u", 1, 4, 0.0, image, image))
    assert not cache.put(RunningSlice("u", 1, 3, 0.0, image * 2, image))  # older: refused
    got = cache.get("u", 1)
    assert got is not None and got.projections == 4


def test_a_published_slice_newer_than_the_live_file_is_what_the_page_gets(
    tmp_path: Path,
) -> None:
    path, volume, _sino = live_file(tmp_path, "scan0001_u1")  # 2 projections in the file
    state, cache = ViewerState(), SliceCache()
    state.apply({"event": "scan", "run": "u1", "experiment": "e", "stem": "scan0001_u1",
                 "n_rows": 4, "time": 1.0, "live": str(path),
                 "file": str(tmp_path / "scan0001_u1.h5")})  # fmt: skip
    state.apply({"event": "live", "run": "u1", "path": str(path), "projections": 2})
    client = Client(create_app(state, tmp_path, slices=cache))
    r = client.get("/api/run/u1/slice?q=4")  # nothing published yet: the file
    assert r.headers["X-Projections"] == "2"
    np.testing.assert_array_equal(np.frombuffer(r.content, "<f4").reshape(5, 5), volume[:, :, 4])
    assert cache.changes() == ([4], [])  # and the viewer now subscribes to q 4
    newer = RunningSlice("u1", 4, 3, 0.0, np.full((5, 5), 7, np.float32), np.zeros((4, 5), "f4"))
    cache.put(newer)
    version = state.major
    state.slice_arrived("u1", 3)
    assert state.major == version + 1 and state.snapshot()["runs"][0]["projections"] == 3
    r = client.get("/api/run/u1/slice?q=4")
    assert r.headers["X-Projections"] == "3"
    assert np.all(np.frombuffer(r.content, "<f4") == 7)
    r = client.get("/api/run/u1/sinogram?q=4")
    assert np.all(np.frombuffer(r.content, "<f4") == 0)
    state.apply({"event": "live", "run": "u1", "path": str(path), "projections": 4})
    r = client.get("/api/run/u1/slice?q=4")  # the file is newer again: the file
    assert r.headers["X-Projections"] == "2"  # (this test's file says 2 whatever it is told)
    assert json.loads(client.get("/api/state").content)["runs"][0]["projections"] == 4


def test_a_new_q_between_a_row_and_its_publishing_holds_no_other_q_back() -> None:
    """A viewer's new q is published at once; the q asked before still get the new row."""
    with xpub_and_sub() as (pub, sub):
        feed, scan, rng = SliceFeed(pub), running_scan(), np.random.default_rng(4)
        add_row(scan, 0, rng)
        subscribe(feed, pub, sub, scan, 1)
        feed.service([scan])  # the first row at q 1 was sent on subscribing: again now
        add_row(scan, 1, rng)  # a new row, and a new q before the loop publishes it
        subscribe(feed, pub, sub, scan, 2)
        feed.service([scan])
        got = []
        while sub.poll(1000):
            s = decode(sub.recv_multipart())
            got.append((s.q, s.projections))
            if (1, 2) in got and (2, 2) in got:
                break
        assert (1, 2) in got and (2, 2) in got, got


def test_a_page_gets_each_newer_slice_of_its_view_once_as_one_binary_message() -> None:
    cache, pages = SliceCache(), Pages()
    image = np.arange(6, dtype=np.float32).reshape(2, 3)
    sino = np.full((4, 3), np.nan, np.float32)
    cache.put(RunningSlice("u1", 5, 3, 0.0, image, sino))
    pages.looking("page-1", "u1", 5, 3)  # it was given the slice with 3 rows
    pages.looking("bad id!", "u1", 5, 0)  # not an id: ignored
    assert pages.due("page-1", cache) is None and pages.due("bad id!", cache) is None
    cache.put(RunningSlice("u1", 5, 4, 0.0, image + 1, sino))
    got = pages.due("page-1", cache)
    assert got is not None and got.projections == 4
    assert pages.due("page-1", cache) is None  # once
    assert cache.changes()[0] == [5]  # a page looking at q 5 keeps it subscribed
    message = frame(got)
    (n,) = struct.unpack("<I", message[:4])
    assert (4 + n) % 4 == 0  # the arrays start aligned for a Float32Array
    header = json.loads(message[4 : 4 + n])
    assert header == {"run": "u1", "q": 5, "projections": 4, "slice": [2, 3], "sinogram": [4, 3]}
    arrays = np.frombuffer(message[4 + n :], "<f4")
    np.testing.assert_array_equal(arrays[:6], (image + 1).ravel())
    assert np.isnan(arrays[6:]).all() and arrays.size == 18
    pages.looking("page-1", "u1", None, 0)  # a map now: no slices pushed
    cache.put(RunningSlice("u1", 5, 5, 0.0, image, sino))
    assert pages.due("page-1", cache) is None
