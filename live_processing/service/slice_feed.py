"""Running slices for viewers: what they subscribed to, published after every new row.

The processor's publish socket is an XPUB, so it sees the topics its viewers subscribe
to (:func:`~operando.protocols.streams.slice_topic`: one q index each; ZMQ passes a
topic's first subscription and its last unsubscription). For each q asked, every scan in
progress gets its slice and sinogram at that q published at once, then again whenever
the scan has a new row. A slice costs one q channel of the reconstruction
(:meth:`~..tomography.incremental_fbp.IncrementalFBP.slice_at`), not the live file's
rewrite of the whole volume, so a viewer sees a row within a fraction of a second. Like
every published message it never waits: a viewer too slow to read drops.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

import numpy as np
import zmq

from ...protocols.streams import MAX_SLICES, slice_index, slice_topic
from .run_state import RunState

log = logging.getLogger(__name__)


class SliceFeed:
    """Publishes the running slices that viewers subscribed to, on ``pub`` (an XPUB)."""

    def __init__(self, pub: zmq.Socket[bytes]) -> None:
        self.pub = pub
        self.wanted: set[int] = set()  # q indices some viewer subscribed to
        self._sent: dict[str, int] = {}  # run uid -> its rows when its slices were published
        self.published = 0  # messages sent (for the tests and the log)

    def on_subscription(self, message: bytes, runs: Iterable[RunState]) -> None:
        """One message of the XPUB: ``\\x01topic`` (subscribe) or ``\\x00topic``."""
        if not message:
            return
        iq = slice_index(message[1:])
        if iq is None:
            return  # the reports' topic, or a topic that is not ours
        if message[0] == 0:
            self.wanted.discard(iq)
        elif iq not in self.wanted:
            if len(self.wanted) >= MAX_SLICES:
                log.warning("viewers ask for over %d q slices; q %d not served", MAX_SLICES, iq)
                return
            self.wanted.add(iq)
            for run in runs:  # the new viewer sees the slice now, not after the next row
                if run.fbp.n_added:
                    self._publish(run, [iq])
                    if self.wanted == {iq}:  # else the others may still be a row behind
                        self._sent[run.uid] = run.fbp.n_added

    def service(self, runs: Iterable[RunState]) -> None:
        """Publish the wanted slices of every scan that has rows it has not published."""
        live = set()
        for run in runs:
            live.add(run.uid)
            rows = run.fbp.n_added
            if rows and self.wanted and self._sent.get(run.uid) != rows:
                self._sent[run.uid] = rows
                self._publish(run, sorted(self.wanted))
        for uid in set(self._sent) - live:  # finished runs
            del self._sent[uid]

    def _publish(self, run: RunState, qs: list[int]) -> None:
        rows = run.fbp.n_added
        n_q = run.integrator.q.size
        for iq in qs:
            if iq >= n_q:
                continue
            image = np.ascontiguousarray(run.fbp.slice_at(iq), dtype="<f4")
            sino = np.ascontiguousarray(run.sinogram.data[:, :, iq], dtype="<f4")
            header = {
                "run": run.uid,
                "q": iq,
                "projections": rows,
                "row_at": run.last_row_at,
                "time": time.time(),
                "slice": list(image.shape),
                "sinogram": list(sino.shape),
            }
            parts: list[bytes | memoryview] = [
                slice_topic(iq),
                json.dumps(header).encode(),
                image.data,
                sino.data,
            ]
            try:
                self.pub.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                self.published += 1
            except zmq.Again:  # a viewer's queue is full: it drops, the processor goes on
                pass
