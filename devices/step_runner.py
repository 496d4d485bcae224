"""One electrochemical step on the instrument: bounded scripts, re-issued, watched.

A constant-current or constant-voltage step runs as a chain of scripts of at most one
*lease* (instrument seconds) each. When a segment ends by its time and the step has
time left, the next is sent at once; should the host die, the instrument finishes the
segment it has and its ``on_finished:`` switches the cell off: the cell is at open
circuit within one lease, whatever happened to the host.

A host-side watchdog: no data package for ``watchdog`` wall-clock seconds while a
script runs (an instrument gone silent, not a pulled cable, which the client sees) →
the step is aborted and fails with :class:`PotentiostatError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from ..protocols import methodscript as ms
from .ec_steps import ConstantCurrent, ConstantVoltage, Step, leased
from .methodscript_client import (
    MethodScriptClient,
    PotentiostatError,
    ScriptNotAcceptedError,
    ScriptRun,
)

log = logging.getLogger(__name__)


class StepOutcome:
    """How a step ended: ``reason`` (as :class:`..potentiostat.StepStatus`), instrument
    seconds run, the last package, and whether the link was lost or the step aborted."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.last: ms.DataPackage | None = None
        self.aborted = False
        self.lost = False
        self.segments = 0


class StepRunner:
    """Runs ``step`` on ``client`` in leases; :meth:`halt` stops re-issuing (abort)."""

    def __init__(
        self,
        client: MethodScriptClient,
        step: Step,
        script_for: Callable[[Step], str],
        *,
        lease: float,
        watchdog: float,
        ended_by_time: Callable[[Step, ms.DataPackage | None], bool],
        on_segment: Callable[[float], None] = lambda offset: None,
        name: str = "pstat",
    ) -> None:
        self.client, self.step, self.script_for = client, step, script_for
        self.lease, self.watchdog, self.name = lease, watchdog, name
        self.ended_by_time, self.on_segment = ended_by_time, on_segment
        self.outcome = StepOutcome()
        self._lock = threading.Lock()
        self._halted = False
        self._run: ScriptRun | None = None

    @property
    def leased(self) -> bool:
        return isinstance(self.step, ConstantCurrent | ConstantVoltage) and self.lease > 0

    def _total(self) -> float:
        """Instrument seconds the whole step may run (leased steps only)."""
        step = self.step
        return step.timeout if isinstance(step, ConstantCurrent | ConstantVoltage) else 0.0

    def _segment(self) -> Step:
        step = self.step
        if isinstance(step, ConstantCurrent | ConstantVoltage) and self.lease > 0:
            return leased(step, min(self.lease, step.timeout - self.outcome.elapsed))
        return step

    def start(self) -> None:
        """Send the first script (raises :class:`PotentiostatError` if refused)."""
        self._run = self.client.run_script(self.script_for(self._segment()))
        self.outcome.segments = 1

    def halt(self) -> None:
        """No further segment (call before aborting the running one)."""
        with self._lock:
            self._halted = True

    def _watch(self, run: ScriptRun) -> None:
        """Wait for ``run`` to end; abort it if no package comes for ``watchdog`` s."""
        seen, since = run.packages, time.monotonic()
        while not run.finished.wait(0.05 if self.watchdog > 0 else None):
            if run.packages != seen:
                seen, since = run.packages, time.monotonic()
            elif time.monotonic() - since > self.watchdog:
                self._silent(
                    f"no data from the instrument for {self.watchdog:g} s while running {self.step}"
                )

    def _silent(self, what: str) -> NoReturn:
        """Abort (as far as a silent instrument lets us) and fail the step, naming why."""
        try:
            self.client.abort(wait=1.0)
        except PotentiostatError:
            log.error("%s: a silent instrument did not confirm the abort", self.name)
        raise PotentiostatError(
            f"{self.name}: {what}: the instrument is silent; the step was aborted"
        )

    def run(self) -> StepOutcome:
        """Block until the step ends; re-issue leases; raise on a failed script."""
        out = self.outcome
        while True:
            run = self._run
            assert run is not None, "start() first"
            self._watch(run)
            out.last = run.last if run.last is not None else out.last
            if run.lost or run.aborted or run.error:
                out.lost, out.aborted = run.lost, run.aborted
                out.elapsed += run.last.time if run.last and run.last.time is not None else 0.0
                if run.error and not run.aborted and not run.lost:
                    raise PotentiostatError(f"{self.name}: step {self.step} failed: {run.error}")
                return out
            ran = run.last.time if run.last and run.last.time is not None else 0.0
            by_time = self.leased and self.ended_by_time(self.step, run.last)
            if by_time:  # the whole lease ran (its last package may come before its end)
                ran = min(self.lease, self._total() - out.elapsed)
            out.elapsed += ran
            left = self._total() - out.elapsed
            refused: ScriptNotAcceptedError | None = None
            with self._lock:
                if self._halted:
                    out.aborted = True
                    return out
                if not (by_time and left > 1e-9):
                    return out
                self.on_segment(out.elapsed)
                try:
                    self._run = self.client.run_script(self.script_for(self._segment()))
                    out.segments += 1
                except PotentiostatError as exc:
                    if not self.client.connected.is_set():
                        out.lost = True  # the link went as the lease ended: as a lost link
                        return out
                    if not isinstance(exc, ScriptNotAcceptedError):
                        raise
                    refused = exc
            if refused is not None:  # outside the lock: halt() may come meanwhile
                self._silent(f"the next lease of {self.step} was not accepted ({refused})")
