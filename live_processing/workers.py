"""Integration workers: frames in over ZMQ PUSH/PULL, integrated patterns back.

The processor decodes each Stream V2 message once, and for an image of a known run it
PUSHes two frames to the workers: a JSON header (series, image id, and the run's
integration spec, ``ProcessingSettings.integration``, whose geometry is the PONI text)
and the raw pixels (zero-copy). A worker PULLs them, integrates with
:class:`.integration.integrate.Integrator` (cached by the spec's key) and PUSHes back a JSON
header and the float32 pattern. Workers can run on this machine (``--workers N`` of the
processor starts them) or on others: ``python -m operando.live_processing.workers
--dispatch ADDR --collect ADDR`` connects to the processor's two bound addresses. Bound
off this host, both pipes need CURVE keys (``--keys DIR``; :mod:`.curve`).

High-water marks are small on both pipes, so a slow worker pool makes the processor
stop reading the detector stream (whose PUSH then blocks): back-pressure, never an
unbounded queue and never a dropped frame.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from ..protocols.child_process import announce, die_with_parent
from .curve import LOCAL, CurveError, CurveServer, is_loopback, secure_client
from .integration.integrate import IntegratorCache

HWM = 4  # messages per pipe: each is a 2M frame (~12 MB)


class WorkerPool:
    """The processor's side: a bound PUSH to the workers, a bound PULL for their patterns.

    ``n`` local workers are started; remote ones connect to ``dispatch_address`` and
    ``collect_address``. Frames wait in a one-deep queue while every worker is busy.
    """

    def __init__(
        self, ctx: zmq.Context, n: int, dispatch: str, collect: str, keys: Path | None = None
    ) -> None:
        if keys is None and not (is_loopback(dispatch) and is_loopback(collect)):
            raise CurveError(
                f"workers bound off this host ({dispatch}, {collect}) need CURVE keys: "
                "--keys DIR (make them with python -m operando.live_processing.curve DIR NAME)"
            )
        self.curve = CurveServer(ctx, keys) if keys is not None else None
        self.dispatch = ctx.socket(zmq.PUSH)
        self.dispatch.setsockopt(zmq.SNDHWM, HWM)
        self.dispatch.setsockopt(zmq.LINGER, 0)
        self.collect = ctx.socket(zmq.PULL)
        if self.curve is not None:
            self.curve.secure(self.dispatch)
            self.curve.secure(self.collect)
        self.dispatch.bind(dispatch)
        self.collect.bind(collect)
        self.dispatch_address = self.dispatch.getsockopt_string(zmq.LAST_ENDPOINT)
        self.collect_address = self.collect.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dispatched = 0  # frames sent to the workers
        self.collected = 0  # ... whose pattern (or error) came back
        self.failed = 0
        self._pending: deque[tuple[bytes, np.ndarray]] = deque()
        cmd = [sys.executable, "-m", "operando.live_processing.workers"]
        addresses = ["--dispatch", self.dispatch_address, "--collect", self.collect_address]
        if keys is not None:
            addresses += ["--keys", str(keys), "--name", LOCAL]
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
        if self.curve is not None:
            self.curve.stop()


class Worker:
    """One integration worker: PULL from ``dispatch``, PUSH to ``collect``."""

    def __init__(
        self, dispatch: str, collect: str, keys: Path | None = None, name: str = LOCAL
    ) -> None:
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, HWM)
        self.outbox = self.ctx.socket(zmq.PUSH)
        self.outbox.setsockopt(zmq.SNDHWM, 64)
        self.outbox.setsockopt(zmq.LINGER, 5000)
        if keys is not None:  # a processor with CURVE: authenticate as worker ``name``
            secure_client(self.inbox, keys, name)
            secure_client(self.outbox, keys, name)
        self.inbox.connect(dispatch)
        self.outbox.connect(collect)
        self.integrator = IntegratorCache()
        self.stop_requested = False  # set by a signal handler
        self.done = 0

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
        """Integrate frames until :attr:`stop_requested` (checked every 100 ms at most)."""
        while not self.stop_requested:
            if not self.inbox.poll(100):
                continue
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
    p.add_argument("--keys", type=Path, help="CURVE keys folder (a processor bound off-host)")
    p.add_argument("--name", default=LOCAL, help="this worker's key pair in KEYS/workers")
    args = p.parse_args(argv)
    try:
        worker = Worker(args.dispatch, args.collect, args.keys, args.name)
    except CurveError as exc:
        p.error(str(exc))

    def stop(signum: int, frame: Any) -> None:
        worker.stop_requested = True  # a flag: an exception raised here could be swallowed

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    announce("WORKER", f"{os.getpid()} ready")
    try:
        worker.serve()
    finally:
        worker.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
