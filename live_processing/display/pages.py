"""What each open page looks at, so that a running scan's new row reaches it over its
websocket as one binary message, not as two requests it makes after hearing of the row.

A page names itself (``page``, a random id) on its websocket and on the slice and map
requests it makes; the slice it asked for last is its view. The push loop then sends
the view's newest published slice and sinogram (:mod:`.slices`) as soon as there is one
newer than the page has. Nothing here is shared between pages, and nothing a page sends
changes what another sees: the server stays read-only.
"""

from __future__ import annotations

import json
import re
import struct
import threading
from dataclasses import dataclass

from .slices import RunningSlice, SliceCache

MAX_PAGES = 256  # views kept at most (the oldest go)
PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class PageView:
    run: str
    q: int | None  # None: the page shows a map, not the slice at a q
    projections: int  # rows in the newest slice the page has


class Pages:
    """The open pages' views; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._views: dict[str, PageView] = {}

    def looking(self, page: str | None, run: str, q: int | None, projections: int) -> None:
        """Page ``page`` was just given ``run``'s slice at ``q`` (None: a map) holding
        ``projections`` rows. An id that is not one (see :data:`PAGE_ID`) is ignored."""
        if page is None or not PAGE_ID.fullmatch(page):
            return
        with self.lock:
            self._views.pop(page, None)
            self._views[page] = PageView(run, q, projections)
            while len(self._views) > MAX_PAGES:
                self._views.pop(next(iter(self._views)))

    def due(self, page: str, slices: SliceCache) -> RunningSlice | None:
        """The published slice newer than what page ``page`` has, if any (then it has it)."""
        with self.lock:
            view = self._views.get(page)
            if view is None or view.q is None:
                return None
            slices.ask(view.q)  # the page still looks at it: keep it subscribed
            got = slices.get(view.run, view.q)
            if got is None or got.projections <= view.projections:
                return None
            view.projections = got.projections
            return got

    def close(self, page: str) -> None:
        with self.lock:
            self._views.pop(page, None)


def frame(s: RunningSlice) -> bytes:
    """A binary websocket message: the header's length (uint32, little-endian), the
    header (JSON, padded with spaces so the arrays start 4-byte aligned), then the slice
    and the sinogram as little-endian float32."""
    header = json.dumps(
        {"run": s.run, "q": s.q, "projections": s.projections,
         "slice": list(s.slice.shape), "sinogram": list(s.sinogram.shape)}
    ).encode()  # fmt: skip
    header += b" " * (-len(header) % 4)
    return b"".join(
        [struct.pack("<I", len(header)), header, s.slice.astype("<f4").tobytes(),
         s.sinogram.astype("<f4").tobytes()]
    )  # fmt: skip
