"""The simulated detector's frame pipeline: render each exposure, keep it, stream it.

One worker thread takes the IOC's queued exposures in order, renders each frame from the
phantom (:mod:`.render`), writes it to the raw file of its series (the file writer) and
pushes it over ZMQ (Stream V2, PUSH, blocking at the high-water mark: nothing dropped).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from ..protocols import stream_v2 as sv2
from ..protocols.raw_frames import RawRecorder
from .render import FrameRenderer


class FrameStreamer(threading.Thread):
    """Renders queued exposures and pushes them; one thread, in order."""

    def __init__(
        self,
        renderer: FrameRenderer,
        address: str,
        seed: int = 0,
        prepare: Callable[[sv2.StartMessage], None] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="frame-streamer")
        self.renderer = renderer
        self.prepare = prepare  # runs before a series starts (e.g. set the sample's state)
        self.ctx: zmq.Context = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, 200)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.bind(address)
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.jobs: queue.Queue[Any] = queue.Queue()
        self.rng = np.random.default_rng(seed)
        self.recorder = RawRecorder()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                break
            if isinstance(job, dict):  # an exposure
                try:
                    frame = self.renderer.frame(
                        job["angle"], job["translation"], job["exposure"], job["flux"], self.rng
                    )
                except Exception:  # a frame that cannot be rendered is lost, loudly
                    import traceback

                    traceback.print_exc()
                    continue
                image = sv2.image_message(
                    job["series_id"],
                    job["series_uid"],
                    job["image_id"],
                    frame,
                    job["t_start"],
                    job["exposure"],
                    job["user_data"],
                )
                self.recorder.frame(image)
                msg: sv2.Message = image
            elif isinstance(job, tuple):  # a series starts: (message, raw folder, pattern)
                begin, folder, pattern = job
                if self.prepare is not None:
                    self.prepare(begin)
                self.recorder.begin(begin, folder, pattern)
                msg = begin
            else:
                msg = job
                if isinstance(msg, sv2.EndMessage):
                    self.recorder.end()
            self.sock.send(sv2.encode(msg))

    def close(self) -> None:
        self.jobs.put(None)
        self.join(timeout=10)
        self.recorder.end(complete=False)
        self.sock.close()
