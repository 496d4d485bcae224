"""The tomography stage: translation ``x`` across the beam, rotation ``rot``, height ``z``."""

from __future__ import annotations

import math

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignalRO

MOVE_MARGIN = 10.0  # s beyond twice the time a move needs: then it has failed


def move_timeout(
    distance: float, velocity: float, accel_time: float, margin: float = MOVE_MARGIN
) -> float:
    """How long a move may take before it counts as failed (s): twice the trapezoid
    profile's time, plus ``margin``. A speed that is not known gives 120 s."""
    if not (math.isfinite(velocity) and velocity > 0):
        return 120.0
    return margin + 2 * (abs(distance) / velocity + 2 * max(accel_time, 0.0))


class Motor(EpicsMotor):
    """A motor record with its maximum speed (``.VMAX``), which fly scans check.

    :meth:`timeout_for` is how long a move of a distance may take (the plans wait on
    their moves with it, in the RunEngine: no thread per move).
    """

    max_velocity = Cpt(EpicsSignalRO, ".VMAX", kind="omitted")
    move_margin = MOVE_MARGIN  # s

    def timeout_for(self, distance: float) -> float:
        """:func:`move_timeout` at the motor's speed now (VELO, ACCL: monitored)."""
        velocity, accel = float(self.velocity.get()), float(self.acceleration.get())
        return move_timeout(distance, velocity, accel, self.move_margin)


class TomoStage(Device):
    """Three motor records under one prefix: ``{prefix}x``, ``{prefix}rot``, ``{prefix}z``."""

    x = Cpt(Motor, "x", kind="hinted")
    rot = Cpt(Motor, "rot", kind="hinted")
    z = Cpt(Motor, "z", kind="normal")
