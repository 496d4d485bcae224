"""The beam-monitor diode (counts/s ∝ flux on the sample)."""

from __future__ import annotations

from ophyd import EpicsSignalRO
from ophyd.sim import FakeEpicsSignalRO


def beam_monitor(pv: str, name: str = "diode", *, fake: bool = False) -> EpicsSignalRO:
    """The diode reading as a read-only signal; its events normalise the frames.

    ``fake``: ophyd's fake signal, for building the beamline without an IOC.
    """
    cls = FakeEpicsSignalRO if fake else EpicsSignalRO
    return cls(pv, name=name, kind="hinted", auto_monitor=True)
