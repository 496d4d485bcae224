"""Sample alignment hardware: the centring translations on the rotation, and a counted
transmission diode."""

from __future__ import annotations

from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO
from ophyd import FormattedComponent as FCpt

from .stage import Motor


class CentringStage(Device):
    """Two translations on top of the rotation, ``{prefix}{cx_pv}`` and
    ``{prefix}{cy_pv}`` (motor records): they turn with the sample. At rotation 0, ``cx``
    moves the sample across the beam (as the tomography translation does) and ``cy``
    along it."""

    cx = FCpt(Motor, "{prefix}{_cx_pv}", kind="hinted")
    cy = FCpt(Motor, "{prefix}{_cy_pv}", kind="hinted")

    def __init__(
        self, prefix: str = "", *, cx_pv: str = "cx", cy_pv: str = "cy", **kwargs: Any
    ) -> None:
        self._cx_pv, self._cy_pv = cx_pv, cy_pv
        super().__init__(prefix, **kwargs)


class CountingDiode(Device):
    """A diode read through a counter channel (scaler, electrometer): triggering counts
    for ``count_time`` and completes when ``rate`` (counts/s) holds that count, so each
    reading belongs to the point it was taken at."""

    count = Cpt(EpicsSignal, "Count", kind="omitted", put_complete=True, trigger_value=1)
    count_time = Cpt(EpicsSignal, "Time", kind="config")
    rate = Cpt(EpicsSignalRO, "Rate", kind="hinted", auto_monitor=False)
