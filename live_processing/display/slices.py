"""The running slices a viewer received from the processor, and the q indices its pages
look at (which it subscribes to: :func:`~operando.protocols.streams.slice_topic`).

The page's slice and sinogram of a running scan come from here when they are at least as
new as the live file; a q no page asked for in :data:`IDLE_S` is unsubscribed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...protocols.streams import MAX_SLICES

IDLE_S = 10.0  # a q no page asked for (or looks at: .pages) in this long is unsubscribed
KEPT = 64  # (run, q) slices kept at most


@dataclass(frozen=True)
class RunningSlice:
    """One published slice and sinogram of a running scan at one q."""

    run: str
    q: int
    projections: int
    row_at: float
    slice: np.ndarray  # (ny, nx) float32
    sinogram: np.ndarray  # (n_angles, n_translations) float32, NaN where no frame yet


def decode(parts: list[bytes]) -> RunningSlice:
    """``[topic, header, slice, sinogram]`` as published; ValueError if malformed."""
    if len(parts) != 4:
        raise ValueError(f"a slice message has 4 parts, not {len(parts)}")
    try:
        h: dict[str, Any] = json.loads(parts[1])
        shape, sino_shape = tuple(h["slice"]), tuple(h["sinogram"])
        image = np.frombuffer(parts[2], dtype="<f4").reshape(shape)
        sino = np.frombuffer(parts[3], dtype="<f4").reshape(sino_shape)
        return RunningSlice(
            str(h["run"]), int(h["q"]), int(h["projections"]), float(h["row_at"]), image, sino
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a malformed slice message: {exc}") from None


class SliceCache:
    """The newest slice per (run, q), and the q indices pages asked for; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self._slices: OrderedDict[tuple[str, int], RunningSlice] = OrderedDict()
        self._asked: dict[int, float] = {}  # q -> when a page last asked
        self._subscribed: set[int] = set()

    def put(self, s: RunningSlice) -> bool:
        """Keep ``s`` unless an as new one is there; True if kept."""
        key = (s.run, s.q)
        with self.lock:
            old = self._slices.get(key)
            if old is not None and old.projections > s.projections:
                return False
            self._slices[key] = s
            self._slices.move_to_end(key)
            while len(self._slices) > KEPT:
                self._slices.popitem(last=False)
        return True

    def get(self, run: str, q: int) -> RunningSlice | None:
        with self.lock:
            return self._slices.get((run, q))

    def ask(self, q: int) -> None:
        """A page looks at q index ``q``."""
        with self.lock:
            self._asked[q] = self.clock()

    def changes(self) -> tuple[list[int], list[int]]:
        """(to subscribe, to unsubscribe): the q indices asked for lately (the newest
        :data:`MAX_SLICES`) against those subscribed; the subscribed set is updated."""
        with self.lock:
            now = self.clock()
            for q in [q for q, t in self._asked.items() if now - t > IDLE_S]:
                del self._asked[q]
            recent = sorted(self._asked, key=self._asked.__getitem__)[-MAX_SLICES:]
            want = set(recent)
            add, drop = sorted(want - self._subscribed), sorted(self._subscribed - want)
            self._subscribed = want
            return add, drop
