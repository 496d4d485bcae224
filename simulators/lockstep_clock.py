"""An instrument clock that runs ``factor`` times faster than the wall clock, in lockstep.

A real potentiostat's firmware timer cannot be late: its data package for t = 10 s is
measured at t = 10 s, and the lines between two waits take microseconds. A simulator
thread that wakes late on a busy host would stamp it at 10 s + (delay × factor), and
at 2000× a 15 ms hiccup is 30 s of cell time.

:class:`LockstepClock` therefore lets simulated time pass only where the firmware
would let it pass:

- while a script runs (:meth:`hold`), time stands still except inside
  :meth:`sleep_until`, where it runs at ``factor`` × wall time up to the target and is
  held there until the firmware has woken and acted on it;
- with no script, it runs freely at ``factor`` × wall time (the cell at rest).

So every package, timeout and loop condition falls exactly on the script's own time
grid, whatever the host's scheduling: a loaded host makes the cell run slower than
``factor`` × wall time, never jump.
"""

from __future__ import annotations

import math
import threading
import time


class LockstepClock:
    """Simulated seconds for the instrument's firmware and its cell."""

    def __init__(self, factor: float, start: float = 0.0) -> None:
        if not factor > 0:
            raise ValueError(f"time factor {factor} must be > 0")
        self.factor = factor
        self._lock = threading.Lock()
        self._t = start  # simulated time at the wall instant _wall
        self._wall = time.monotonic()
        self._running = True  # time passes (no script, or a script sleeping)
        self._cap = math.inf  # a sleeping script's target: time is held there

    def _value(self) -> float:
        if not self._running:
            return self._t
        return min(self._t + (time.monotonic() - self._wall) * self.factor, self._cap)

    def _rebase(self, running: bool) -> None:
        self._t, self._wall, self._running = self._value(), time.monotonic(), running

    def now(self) -> float:
        """The current simulated time (s)."""
        with self._lock:
            return self._value()

    def hold(self) -> None:
        """A script starts: from now on time passes only in :meth:`sleep_until`."""
        with self._lock:
            self._rebase(running=False)

    def release(self) -> None:
        """The script ended: time runs freely again."""
        with self._lock:
            self._rebase(running=True)

    def sleep_until(self, target: float, interrupt: threading.Event) -> bool:
        """Let time run to simulated ``target``; True if ``interrupt`` was set first."""
        with self._lock:
            held = not self._running
            self._rebase(running=True)
            self._cap = target
        try:
            while True:
                with self._lock:
                    left = (target - self._value()) / self.factor
                if left <= 0:
                    return interrupt.is_set()
                if interrupt.wait(left):
                    return True
        finally:
            with self._lock:
                self._rebase(running=not held)
                self._cap = math.inf
