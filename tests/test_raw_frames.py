"""Raw frames on disk: the detector's file writer keeps every frame it streams.

The layout (one HDF5 file per series, a bitshuffle-LZ4 chunk per frame, image ids
kept) is read back and compared bit for bit with what went over the stream; a writer
killed mid-series leaves every frame it had flushed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

from operando.devices.detector import RawWriteError
from operando.protocols import stream_v2 as sv2
from operando.protocols.raw_frames import (
    BITSHUFFLE_LZ4,
    DEFAULT_PATTERN,
    RawFileError,
    RawSeriesWriter,
    file_name,
    read_series,
)

SHAPE = (12, 10)


def start(uid: str = "abc") -> sv2.StartMessage:
    return sv2.StartMessage(3, uid, 5, SHAPE[1], SHAPE[0], 1e-4, 1e-4, 0.01, 0.01, 0.2, 1.0,
                            5.0, 6.0, {"run": "r1"})  # fmt: skip


def frame(k: int) -> np.ndarray:
    return np.random.default_rng(k).poisson(3.0, SHAPE).astype("<u4")


def test_layout_bslz4_a_chunk_per_frame_ids_kept(tmp_path: Path) -> None:
    w = RawSeriesWriter(tmp_path, start())
    for k in (0, 1, 4):  # ids 2 and 3 were dropped before the stream
        w.append(sv2.image_message(3, "abc", k, frame(k), 0.01 * k, 0.01, {"angle": 10.0 * k}))
    w.close()
    assert w.path.name == "series_3_abc_data.h5"
    with h5py.File(w.path) as f:
        d = f["entry/data/data"]
        assert d.chunks == (1, *SHAPE)
        assert str(BITSHUFFLE_LZ4) in d._filters
    s = read_series(w.path)
    assert s.complete and s.series_id == 3 and s.start["user_data"] == {"run": "r1"}
    assert s.image_id.tolist() == [0, 1, 4]
    assert [u["angle"] for u in s.user_data] == [0.0, 10.0, 40.0]
    np.testing.assert_allclose(s.start_time, [0.0, 0.01, 0.04])
    frames = s.frames()
    for pos, k in enumerate((0, 1, 4)):
        assert np.array_equal(frames[pos], frame(k))
    with pytest.raises(RawFileError, match="exists already; it is not overwritten"):
        RawSeriesWriter(tmp_path, start())
    with pytest.raises(RawFileError, match="not a plain file name"):
        file_name("../${id}", 1, "u")
    w2 = RawSeriesWriter(tmp_path, start("other"))
    with pytest.raises(RawFileError, match=r"frame 0 is \(3, 3\), the series' frames are"):
        w2.append(sv2.image_message(3, "other", 0, np.zeros((3, 3), "<u4"), 0, 0.01, {}))
    w2.close()


WRITER = """
import sys
from pathlib import Path
import numpy as np
from operando.protocols import stream_v2 as sv2
from operando.protocols.raw_frames import RawSeriesWriter
w = RawSeriesWriter(Path(sys.argv[1]), sv2.StartMessage(
    1, "killed", 10**6, 10, 12, 1e-4, 1e-4, 0.01, 0.01, 0.2, 1.0, 5.0, 6.0, {}))
k = 0
while True:
    f = np.random.default_rng(k).poisson(3.0, (12, 10)).astype("<u4")
    w.append(sv2.image_message(1, "killed", k, f, 0.01 * k, 0.01, {}))
    print(k, flush=True)  # acknowledged: on disk
    k += 1
"""


def test_a_writer_killed_mid_series_leaves_every_frame_it_acknowledged(tmp_path: Path) -> None:
    acknowledged = -1
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 25:
                break
        proc.kill()
    s = read_series(tmp_path / file_name(DEFAULT_PATTERN, 1, "killed"))
    assert not s.complete
    assert s.image_id.size >= acknowledged + 1
    assert s.image_id.tolist() == list(range(s.image_id.size))
    frames = s.frames()
    for k in range(s.image_id.size):
        assert np.array_equal(frames[k], frame(k))


def receive_series(pull: zmq.Socket, series_id: int) -> list[sv2.Message]:
    """Series ``series_id`` from the stream, start to end (what earlier tests' series
    left queued in the stream is passed over)."""
    msgs: list[sv2.Message] = []
    while not msgs or not isinstance(msgs[-1], sv2.EndMessage):
        assert pull.poll(60_000), "the detector sent nothing for 60 s"
        msg = sv2.decode(pull.recv())
        if msg.series_id == series_id and (msgs or isinstance(msg, sv2.StartMessage)):
            msgs.append(msg)
    return msgs


def test_the_detector_writes_every_frame_it_streams(beamline, ioc, tmp_path: Path) -> None:
    det = beamline.det
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(ioc.info["stream"])
    try:
        det.raw_folder.put(str(tmp_path / "raw"))
        det.burst.put(3)
        det.stage()
        series = int(det.series_id.get(use_monitor=False))
        try:
            det.trigger().wait(60)
            det.drop_frames.put(2)  # two frames exposed, lost before the stream
            for _ in range(3):
                det.trigger().wait(60)
            assert det.file_path.get() == str(tmp_path / "raw")
        finally:
            det.unstage()
        msgs = receive_series(pull, series)
        begin = msgs[0]
        assert isinstance(begin, sv2.StartMessage)
        images = [m for m in msgs if isinstance(m, sv2.ImageMessage)]
        name = file_name(DEFAULT_PATTERN, begin.series_id, begin.series_unique_id)
        s = read_series(tmp_path / "raw" / name)  # closed before the end was streamed
        assert s.complete
        assert s.image_id.tolist() == [m.image_id for m in images] == [0, 1, 2, *range(5, 12)]
        frames = s.frames()
        for pos, m in enumerate(images):
            assert np.array_equal(frames[pos], m.data)
            assert s.user_data[pos] == m.user_data
        # a folder the detector cannot write: refused when the series is armed
        (tmp_path / "a_file").write_text("not a folder")
        det.raw_folder.put(str(tmp_path / "a_file" / "raw"))
        with pytest.raises(RawWriteError, match="a_file/raw: cannot be made"):
            det.stage()
        time.sleep(0.5)  # five periods of the writer's status scan, which once reverted it
        assert "a_file/raw: cannot be made" in str(det.file_writer_status.get(use_monitor=False))
        refused = receive_series(pull, series + 1)  # opened and closed, with no frame
        assert [type(m) for m in refused] == [sv2.StartMessage, sv2.EndMessage]
    finally:
        det.raw_folder.put("")
        det.burst.put(1)
        ctx.destroy(linger=0)


def test_frames_are_kept_on_disk_while_nobody_takes_the_stream(
    beamline, ioc, tmp_path: Path
) -> None:
    """No consumer on the stream (a processor down): the file writer still keeps every
    frame at once; the stream holds the first SEND_BUFFER images for whoever comes,
    the rest are on disk only. (Before: the writer waited on the stream.)"""
    from operando.simulators.frame_streamer import SEND_BUFFER

    det = beamline.det
    n = 2 * SEND_BUFFER + 50
    before = int(det.frames_written.get(use_monitor=False))
    try:
        det.raw_folder.put(str(tmp_path / "raw"))
        det.burst.put(n)
        det.stage()
        series = int(det.series_id.get(use_monitor=False))
        try:
            det.trigger().wait(120)
            deadline = time.monotonic() + 120  # against a hang: rendering n frames
            while int(det.frames_written.get(use_monitor=False)) < before + n:
                assert time.monotonic() < deadline, det.frames_written.get(use_monitor=False)
                time.sleep(0.1)
        finally:
            det.unstage()
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.connect(ioc.info["stream"])  # a processor, back
        try:
            msgs = receive_series(pull, series)
        finally:
            ctx.destroy(linger=0)
    finally:
        det.raw_folder.put("")
        det.burst.put(1)
    images = [m for m in msgs if isinstance(m, sv2.ImageMessage)]
    begin = msgs[0]
    s = read_series(tmp_path / "raw" / file_name(DEFAULT_PATTERN, series, begin.series_unique_id))
    assert s.complete and s.image_id.tolist() == list(range(n))  # every frame on disk
    assert 0 < len(images) <= SEND_BUFFER + 1 < n  # the stream kept what it could hold
    frames = s.frames()
    for m in images:  # and what it streamed is what is on disk
        assert np.array_equal(frames[m.image_id], m.data)
