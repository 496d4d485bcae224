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

import hashlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from .integrate import Integrator, load_poni

HWM = 4  # messages per pipe: each is a 2M frame (~12 MB)


def integration_spec(poni_text: str, n_bins: int, q_range: tuple[float, float]) -> dict[str, Any]:
    """What a worker needs to integrate a run's frames (no shared file system assumed)."""
    key = hashlib.sha1(f"{poni_text}|{n_bins}|{q_range}".encode()).hexdigest()[:16]
    return {"key": key, "poni": poni_text, "bins": n_bins, "q_range": list(q_range)}


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
            self.integrators[key] = Integrator(ai, int(spec["bins"]), (float(lo), float(hi)))
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
    print(f"WORKER {os.getpid()} ready", flush=True)
    try:
        worker.serve()
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
