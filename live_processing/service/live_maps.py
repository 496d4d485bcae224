"""The lattice maps of the slice so far, made beside the processor's loop.

A scan's maps take a second or two; the loop that places frames must not wait for
them. :class:`LiveMaps` makes them on one background thread from a copy of the volume:
at most one job at a time, a new one only after ``every`` new rows (and for the last
row), and only while the jobs have taken at most ``DUTY`` of the time since the first
one (the fits run compiled and release the GIL, but they share the cores).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..analysis.lattice import LatticeError, lattice_maps

log = logging.getLogger(__name__)

DUTY = 0.2  # at most this share of the time spent on live maps
Maps = tuple[dict[str, dict[str, np.ndarray]], int]  # the maps, the rows they hold
JOBS_PER_SCAN = 4  # a new job every n_rows / JOBS_PER_SCAN rows, at least


class LiveMaps:
    """Lattice maps of a running scan, one job at a time on a background thread."""

    def __init__(
        self,
        q: np.ndarray,
        phases: Sequence[str],
        fwhm: float,
        n_rows: int,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: seconds, for the budget (tests give their own)."""
        self.q, self.phases, self.fwhm = q, tuple(phases), fwhm
        self.clock = clock
        self.every = max(1, n_rows // JOBS_PER_SCAN)
        self.n_rows = n_rows
        self.name = name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"live-maps-{name}")
        self._job: Future[Maps] | None = None
        self._rows_done = 0  # rows of the volume the latest job was given
        self._busy = 0.0  # seconds spent on jobs
        self._since: float | None = None  # when the first job began
        self.failed: str | None = None

    def submit(self, volume: np.ndarray, rows: int) -> bool:
        """Start maps of ``volume`` (holding ``rows`` rows) when due and within budget;
        True if started."""
        if self._job is not None or self.failed is not None:
            return False
        last = rows >= self.n_rows and rows > self._rows_done
        if not last and rows - self._rows_done < self.every:
            return False
        now = self.clock()
        if self._since is not None and not last and self._busy > DUTY * (now - self._since):
            return False
        self._since = now if self._since is None else self._since
        self._rows_done = rows
        self._job = self._pool.submit(self._make, volume.copy(), rows)
        return True

    def _make(self, volume: np.ndarray, rows: int) -> Maps:
        t0 = self.clock()
        try:
            return lattice_maps(volume, self.q, self.phases, self.fwhm), rows
        finally:
            self._busy += self.clock() - t0

    def take(self) -> Maps | None:
        """The finished job's maps and the rows they hold, once (None while running or
        if none)."""
        if self._job is None or not self._job.done():
            return None
        job, self._job = self._job, None
        try:
            maps = job.result()
        except LatticeError as exc:  # no line in range: stop trying for this scan
            self.failed = str(exc)
            log.warning("live maps of %s: %s", self.name, exc)
            return None
        return maps

    def wait(self, timeout: float | None = None) -> Maps | None:
        """Wait for the running job (if any) and take its maps."""
        if self._job is not None:
            self._job.exception(timeout)  # waits; errors come out in take()
        return self.take()

    def close(self) -> None:
        """Stop taking jobs; a running one finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
