"""TTL trigger lines between the beamline controls and the potentiostat (seed 001).

``trig:In`` is a digital input the potentiostat drives high while it pauses the cell;
``trig:Out`` a digital output the beamline raises when a scan is done. Rising edges of
the input are counted from CA monitor updates, so a short pulse is not missed between
two polls.
"""

from __future__ import annotations

import threading
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO


class TriggerLines(Device):
    """The pair of TTL lines; ``rising_edges`` counts 0→1 transitions of the input."""

    trig_in = Cpt(EpicsSignalRO, "trig:In", kind="normal")
    trig_out = Cpt(EpicsSignal, "trig:Out", kind="normal")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self._lock = threading.Lock()
        self._level: int | None = None
        self.rising_edges = 0
        self.trig_in.subscribe(self._on_input, run=True)

    def _on_input(self, value: Any = None, **kwargs: Any) -> None:
        if value is None:
            return
        level = int(value)
        with self._lock:
            if self._level == 0 and level == 1:
                self.rising_edges += 1
            self._level = level
