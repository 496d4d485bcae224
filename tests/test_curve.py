"""CURVE on the worker pipes: off-host binds need keys; a worker without an accepted
key gets no frame, one with its key gets them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from operando.live_processing.curve import (
    CurveError,
    is_loopback,
    make_keys,
    secure_client,
)
from operando.live_processing.workers import WorkerPool


def test_which_addresses_leave_the_host() -> None:
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("tcp://[::1]:5555") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://0.0.0.0:5555")
    assert not is_loopback("tcp://192.168.1.7:5555")


def test_an_off_host_bind_without_keys_is_refused_before_binding() -> None:
    ctx = zmq.Context()
    try:
        with pytest.raises(CurveError, match=r"off this host .*need CURVE keys: --keys DIR"):
            WorkerPool(ctx, 0, "tcp://*:0", "tcp://127.0.0.1:*")
    finally:
        ctx.destroy(linger=0)


def test_only_a_worker_with_an_accepted_key_gets_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["beamline-gpu"])
    rogue_keys = tmp_path / "rogue"  # a pair the processor never saw, same server key
    make_keys(rogue_keys, ["intruder"])
    (rogue_keys / "processor.key").write_bytes((keys / "processor.key").read_bytes())
    ctx = zmq.Context()
    caplog.set_level(logging.DEBUG, logger="operando.live_processing.curve")
    pool = WorkerPool(ctx, 0, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", keys)
    try:
        rogue = ctx.socket(zmq.PULL)
        secure_client(rogue, rogue_keys, "intruder")
        rogue.connect(pool.dispatch_address)
        deadline = time.monotonic() + 20  # against a hang: the denial is an event
        while "DENIED" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        pixels = np.arange(12, dtype=np.uint32)
        pool.submit({"series": 1, "image": 0}, pixels)
        assert not pool.flush()  # no accepted worker: the frame waits, nobody took it
        worker = ctx.socket(zmq.PULL)
        secure_client(worker, keys, "beamline-gpu")
        worker.connect(pool.dispatch_address)
        while not pool.flush():
            assert time.monotonic() < deadline + 20
            time.sleep(0.02)
        assert worker.poll(20000)
        _head, body = worker.recv_multipart()
        assert np.array_equal(np.frombuffer(body, np.uint32), pixels)
        assert not rogue.poll(0)  # and the intruder has nothing
        assert "ALLOWED" in caplog.text
    finally:
        pool.close()
        ctx.destroy(linger=0)


def test_the_processors_own_workers_authenticate_with_the_local_pair(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, [])
    ctx = zmq.Context()
    caplog.set_level(logging.DEBUG, logger="operando.live_processing.curve")
    pool = WorkerPool(ctx, 1, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", keys)
    try:
        deadline = time.monotonic() + 60  # a worker process starting (imports): an event
        while caplog.text.count("ALLOWED") < 2:  # its two sockets
            assert time.monotonic() < deadline, caplog.text
            assert pool.procs[0].poll() is None, "the worker ended"
            time.sleep(0.05)
        assert "DENIED" not in caplog.text
    finally:
        pool.close()
        ctx.destroy(linger=0)
