"""The transition log of an operando protocol: one event per change of state.

Each transition is an event in the ``transitions`` stream of the electrochemistry run
that is open when it happens: the new ``state``, the ``reason`` for the change, the
scan counter ``n``, and the cell's voltage and current at that moment. The live
processor writes them to ``/entry/protocol`` of every scan file of the experiment.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
from bluesky.utils import MsgGenerator
from ophyd import Component as Cpt
from ophyd import Device, Signal

from ..devices.potentiostat import Potentiostat
from ..protocols.streams import TRANSITIONS_STREAM

STREAM = TRANSITIONS_STREAM


class ProtocolLog(Device):
    """Soft signals describing the protocol's present state."""

    state = Cpt(Signal, value="", kind="hinted")
    reason = Cpt(Signal, value="", kind="normal")
    n = Cpt(Signal, value=0, kind="normal")
    voltage = Cpt(Signal, value=float("nan"), kind="normal")
    current = Cpt(Signal, value=float("nan"), kind="normal")

    def __init__(self, name: str = "protocol", **kwargs: object) -> None:
        super().__init__(name=name, **kwargs)
        self.history: list[tuple[str, str, int]] = []


def transition(
    log: ProtocolLog, pstat: Potentiostat, state: str, reason: str, n: int
) -> MsgGenerator[None]:
    """Record a transition (inside an open run) as an event of the ``transitions`` stream.

    The soft signals are written directly (not ``mv``): they hold no hardware, and a
    NaN reading (no data package yet) would never compare equal to its setpoint.
    """
    values = (state, reason, n, float(pstat.voltage.get()), float(pstat.current.get()))
    signals = (log.state, log.reason, log.n, log.voltage, log.current)
    for sig, value in zip(signals, values, strict=True):
        sig.put(value)
    log.history.append((state, reason, n))
    yield from bps.trigger_and_read([log], name=STREAM)
