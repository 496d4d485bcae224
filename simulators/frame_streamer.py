"""The simulated detector's frame pipeline: render each exposure, keep it, stream it.

One worker thread takes the IOC's queued exposures in order, renders each frame from the
phantom (:mod:`.render`) and writes it to the raw file of its series (the file writer);
a second thread pushes the messages over ZMQ (Stream V2, PUSH), in order. The two are
decoupled by a bounded buffer, so the file writer keeps every frame whatever the
stream's consumer does (a dead processor, a slow one):

- while the series is recorded to a raw file, images beyond :data:`SEND_BUFFER` waiting
  to be sent are not streamed (they are on disk; the processor reads them back from
  there) and counted in :attr:`FrameStreamer.shed`;
- without a raw file nothing may be lost: the renderer waits for the stream
  (back-pressure, as before).

Start and end messages are never shed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from typing import Any, Protocol

import numpy as np
import zmq

from ..protocols import stream_v2 as sv2
from ..protocols.raw_frames import RawRecorder

log = logging.getLogger(__name__)

SEND_BUFFER = 200  # images waiting for the stream before a recorded series sheds them


class SendBuffer:
    """The messages to stream, in order; full, it sheds images or makes the renderer wait."""

    def __init__(self, limit: int = SEND_BUFFER) -> None:
        self.limit = limit
        self._q: deque[sv2.Message | None] = deque()
        self._cv = threading.Condition()

    def put(self, msg: sv2.Message | None, sheddable: bool = False) -> bool:
        """Queue ``msg``; an image finding the buffer full is shed (False) if
        ``sheddable``, else waits for room. Other messages always go in."""
        with self._cv:
            while isinstance(msg, sv2.ImageMessage) and len(self._q) >= self.limit:
                if sheddable:
                    return False
                self._cv.wait()
            self._q.append(msg)
            self._cv.notify_all()
            return True

    def get(self) -> sv2.Message | None:
        with self._cv:
            while not self._q:
                self._cv.wait()
            msg = self._q.popleft()
            self._cv.notify_all()
            return msg


class SeriesPreparer(Protocol):
    """The sample's state per series: captured at arm, applied as the series starts."""

    def capture(self) -> Any: ...

    def __call__(self, start: sv2.StartMessage, armed: Any) -> None: ...


class Renderer(Protocol):
    """What the streamer and the cam need of a detector's renderer."""

    def frame(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float, rng: np.random.Generator
    ) -> np.ndarray: ...

    def expected_total(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float
    ) -> float: ...

    def stream_geometry(self) -> dict[str, float]: ...


class FrameStreamer(threading.Thread):
    """Renders queued exposures and pushes them; one thread, in order."""

    def __init__(
        self,
        renderer: Renderer,
        address: str,
        seed: int = 0,
        prepare: SeriesPreparer | None = None,
    ) -> None:
        super().__init__(daemon=True, name="frame-streamer")
        self.renderer = renderer
        self.prepare = prepare  # the sample's state: captured at arm, set as a series starts
        self.ctx: zmq.Context = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, 200)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.bind(address)
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbox = SendBuffer()
        self._closing = threading.Event()
        self.shed = 0  # images not streamed (kept on disk) since the IOC started
        self.sender = threading.Thread(target=self._send, daemon=True, name="frame-sender")
        self.sender.start()
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
                    frame = job.get("renderer", self.renderer).frame(
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
            elif isinstance(job, tuple):  # a series starts: (message, folder, pattern, refusal,
                begin, folder, pattern, refused, armed = job  # and what capture() gave)
                try:
                    if self.prepare is not None:
                        self.prepare(begin, armed)
                except Exception:  # said loudly; the series still streams (no ground truth)
                    log.exception("series %s: its sample could not be set", begin.series_id)
                self.recorder.begin(begin, folder, pattern, refused)
                msg = begin
            else:
                msg = job
                if isinstance(msg, sv2.EndMessage):
                    self.recorder.end()
            recorded = self.recorder.writer is not None  # this series is on disk
            if not self.outbox.put(msg, sheddable=recorded):
                self.shed += 1
                if self.shed == 1 or self.shed % 1000 == 0:
                    log.warning("stream consumer behind: %d images kept on disk only", self.shed)
        self.outbox.put(None)

    def _send(self) -> None:
        """Push the buffered messages, in order, waiting while nobody takes them."""
        while (msg := self.outbox.get()) is not None:
            data = sv2.encode(msg)
            while not self.sock.poll(50, zmq.POLLOUT):
                if self._closing.is_set():
                    return
            self.sock.send(data)

    def capture(self) -> Any:
        """At a series' arm: the sample state it is to be rendered with (queue it with the
        series' start job)."""
        return self.prepare.capture() if self.prepare is not None else None

    def close(self) -> None:
        self.jobs.put(None)
        self.join(timeout=10)
        self.sender.join(timeout=2)  # what a consumer still takes goes out
        self._closing.set()
        self.sender.join(timeout=2)
        self.recorder.end(complete=False)
        self.sock.close()
