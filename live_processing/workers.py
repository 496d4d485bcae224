"""Integration workers: frames in over ZMQ PUSH/PULL, integrated patterns back.

The processor decodes each Stream V2 message once, and for an image of a known run it
PUSHes two frames to the workers: a JSON header (series, image id, the geometry as PONI
text, bins, q range) and the raw pixels (zero-copy). A worker PULLs them, integrates
with :class:`.integrate.Integrator` (one per geometry, cached) and PUSHes back a JSON
header and the float32 pattern. Workers can run on this machine (``--workers N`` of the
processor starts them) or on others: ``python -m operando.live_processing.workers
--dispatch ADDR --collect ADDR`` connects to the processor's two bound addresses.

High-water marks are small on both pipes, so a slow worker pool makes the processor
stop reading the detector stream (whose PUSH then blocks): back-pressure, never an
unbounded queue and never a dropped frame.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from ..protocols.child_process import announce, die_with_parent
from .integrate import Integrator, load_poni

HWM = 4  # messages per pipe: each is a 2M frame (~12 MB)


def integration_spec(
    poni_text: str, n_bins: int, q_range: tuple[float, float], method: str = "mean"
) -> dict[str, Any]:
    """What a worker needs to integrate a run's frames (no shared file system assumed)."""
    key = hashlib.sha1(f"{poni_text}|{n_bins}|{q_range}|{method}".encode()).hexdigest()[:16]
    return {
        "key": key,
        "poni": poni_text,
        "bins": n_bins,
        "q_range": list(q_range),
        "method": method,
    }


class WorkerPool:
    """The processor's side: a bound PUSH to the workers, a bound PULL for their patterns.

    ``n`` local workers are started; remote ones connect to ``dispatch_address`` and
    ``collect_address``. Frames wait in a one-deep queue while every worker is busy.
    """

    def __init__(self, ctx: zmq.Context, n: int, dispatch: str, collect: str) -> None:
        self.dispatch = ctx.socket(zmq.PUSH)
        self.dispatch.setsockopt(zmq.SNDHWM, HWM)
        self.dispatch.setsockopt(zmq.LINGER, 0)
        self.dispatch.bind(dispatch)
        self.collect = ctx.socket(zmq.PULL)
        self.collect.bind(collect)
        self.dispatch_address = self.dispatch.getsockopt_string(zmq.LAST_ENDPOINT)
        self.collect_address = self.collect.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dispatched = 0  # frames sent to the workers
        self.collected = 0  # ... whose pattern (or error) came back
        self.failed = 0
        self._pending: deque[tuple[bytes, np.ndarray]] = deque()
        cmd = [sys.executable, "-m", "operando.live_processing.workers"]
        addresses = ["--dispatch", self.dispatch_address, "--collect", self.collect_address]
        # the parallelism is the workers: each gets its share of the cores for its numba
        # threads (the robust engines), so n workers do not oversubscribe the machine
        env = dict(os.environ)
        env.setdefault("NUMBA_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, n))))
        self.procs = [
            subprocess.Popen(
                [*cmd, *addresses],
                stdout=subprocess.DEVNULL,
                env=env,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
            for _ in range(n)
        ]

    def submit(self, header: dict[str, Any], pixels: np.ndarray) -> None:
        """Queue one frame (sent by :meth:`flush`)."""
        self._pending.append((json.dumps(header).encode(), np.ascontiguousarray(pixels)))

    def flush(self) -> bool:
        """Send queued frames while the workers take them; True when none wait."""
        while self._pending:
            head, data = self._pending[0]
            try:
                self.dispatch.send_multipart([head, data], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            self._pending.popleft()
            self.dispatched += 1
        return True

    def receive(self) -> tuple[dict[str, Any], np.ndarray | None] | None:
        """One result if there is one: (header, pattern), pattern None for a failed frame."""
        try:
            parts = self.collect.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        head = json.loads(parts[0])
        self.collected += 1
        if "error" in head:
            self.failed += 1
            return head, None
        return head, np.frombuffer(parts[1], dtype=np.float32).copy()

    @property
    def behind(self) -> int:
        """Frames handed to the pool whose pattern has not come back."""
        return self.dispatched + len(self._pending) - self.collected

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


class Worker:
    """One integration worker: PULL from ``dispatch``, PUSH to ``collect``."""

    def __init__(self, dispatch: str, collect: str) -> None:
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, HWM)
        self.inbox.connect(dispatch)
        self.outbox = self.ctx.socket(zmq.PUSH)
        self.outbox.setsockopt(zmq.SNDHWM, 64)
        self.outbox.setsockopt(zmq.LINGER, 5000)
        self.outbox.connect(collect)
        self.integrators: dict[str, Integrator] = {}
        self.done = 0

    def integrator(self, spec: dict[str, Any]) -> Integrator:
        key = spec["key"]
        if key not in self.integrators:
            with tempfile.TemporaryDirectory() as tmp:
                poni = Path(tmp) / "geometry.poni"
                poni.write_text(spec["poni"])
                ai = load_poni(poni)
            lo, hi = spec["q_range"]
            method = str(spec.get("method", "mean"))
            self.integrators[key] = Integrator(
                ai, int(spec["bins"]), (float(lo), float(hi)), method
            )
        return self.integrators[key]

    def handle(self, header: dict[str, Any], pixels: memoryview) -> None:
        frame = np.frombuffer(pixels, dtype=header["dtype"]).reshape(header["shape"])
        reply = {"series": header["series"], "image": header["image"], "worker": os.getpid()}
        try:
            _q, pattern = self.integrator(header["spec"]).integrate(frame)
        except Exception as exc:  # report: the processor records the frame as failed
            self.outbox.send_json({**reply, "error": f"{type(exc).__name__}: {exc}"})
            return
        body = np.ascontiguousarray(pattern, np.float32).tobytes()
        self.outbox.send_multipart([json.dumps(reply).encode(), body])
        self.done += 1

    def serve(self) -> None:
        while True:
            head, pixels = self.inbox.recv_multipart(copy=False)
            self.handle(json.loads(head.bytes), pixels.buffer)

    def close(self) -> None:
        self.ctx.destroy(linger=5000)


def main(argv: list[str] | None = None) -> None:
    """``python -m operando.live_processing.workers --dispatch ADDR --collect ADDR``."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dispatch", required=True, help="the processor's dispatch address")
    p.add_argument("--collect", required=True, help="the processor's collect address")
    args = p.parse_args(argv)
    worker = Worker(args.dispatch, args.collect)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    announce("WORKER", f"{os.getpid()} ready")
    try:
        worker.serve()
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
