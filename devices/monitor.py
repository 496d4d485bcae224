"""The beam-monitor diode (counts/s ∝ flux on the sample)."""

from __future__ import annotations

from ophyd import EpicsSignalRO


def beam_monitor(pv: str, name: str = "diode") -> EpicsSignalRO:
    """The diode reading as a read-only signal; its events normalise the frames."""
    return EpicsSignalRO(pv, name=name, kind="hinted", auto_monitor=True)
