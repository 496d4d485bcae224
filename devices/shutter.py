"""The fast shutter: command PV and a status readback that a ``set`` waits for."""

from __future__ import annotations

from typing import Any

from ophyd import EpicsSignal

OPEN, CLOSED = 1, 0


class Shutter(EpicsSignal):
    """``set(1)`` opens, ``set(0)`` closes; the status completes when the readback agrees."""

    def __init__(self, prefix: str, *, name: str, **kwargs: Any) -> None:
        super().__init__(
            f"{prefix}Status", write_pv=f"{prefix}Open", name=name, tolerance=0.5, **kwargs
        )
