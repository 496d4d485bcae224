"""Is the IOC there? A soft signal that follows the Channel Access connections of a set
of PVs, and a suspender that holds a plan while they are down, for a limited time.

``IocConnection`` is 1 while every watched signal is connected and 0 as soon as one is
not (pyepics reports the loss of a circuit at once: a killed IOC, a pulled cable).
``ioc_suspender`` suspends the plan then; if the PVs come back within ``timeout`` s the
plan resumes (bluesky rewinds to the last checkpoint; a detector that had to arm a new
series has its configuration read again, so the run's next events come under a new
descriptor naming it), otherwise it fails with
:class:`IocLostError` naming what was lost, and the plan's cleanup runs (the cell goes
to open circuit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.suspenders import SuspendBoolLow
from bluesky.utils import MsgGenerator
from ophyd import Signal

log = logging.getLogger(__name__)


class IocLostError(ConnectionError):
    """PVs of the beamline stayed disconnected longer than allowed."""


class IocConnection(Signal):
    """1 while every watched signal is connected, else 0; ``lost`` names the others."""

    def __init__(
        self, watched: Iterable[Any], *, name: str = "ioc_connected", rearm: Iterable[Any] = ()
    ) -> None:
        super().__init__(name=name, value=1, kind="omitted")
        # devices that may arm again in a new series on resuming (``rearmed`` set): their
        # configuration is read again after a suspension, so a new descriptor says so
        self.rearm = list(rearm)
        self._lock = threading.Lock()
        self._up: dict[str, bool] = {}
        for sig in watched:
            self._up[sig.pvname] = bool(sig.connected)
            sig.subscribe(self._on_meta(sig.pvname), event_type="meta", run=False)
        self.put(int(all(self._up.values())))

    def _on_meta(self, pvname: str) -> Any:
        def cb(*, connected: bool | None = None, **_: Any) -> None:
            if connected is None:
                return
            with self._lock:
                self._up[pvname] = bool(connected)
                value = int(all(self._up.values()))
            if value != self.get():
                if not value:
                    log.warning("Channel Access: lost %s", ", ".join(self.lost))
                self.put(value)

        return cb

    @property
    def lost(self) -> list[str]:
        with self._lock:
            return [pv for pv, up in self._up.items() if not up]


def ioc_suspender(connection: IocConnection, timeout: float) -> SuspendBoolLow:
    """Suspend while ``connection`` is 0; fail the plan after ``timeout`` s of it."""

    def wait_back() -> MsgGenerator[None]:
        deadline = time.monotonic() + timeout
        lost = ", ".join(connection.lost) or "the beamline's PVs"
        while not connection.get():
            if time.monotonic() > deadline:
                raise IocLostError(
                    f"the IOC is lost: {lost} disconnected and not back within {timeout:g} s"
                )
            yield from bps.sleep(0.2)

    def new_configuration() -> MsgGenerator[None]:
        for device in connection.rearm:
            if getattr(device, "rearmed", False):
                device.rearmed = False
                yield from bps.configure(device, {})

    return SuspendBoolLow(
        connection,
        sleep=0.5,
        pre_plan=wait_back,
        post_plan=new_configuration,
        tripped_message=f"IOC connection lost: waiting up to {timeout:g} s for it",
    )
