"""The tomography stage: translation ``x`` across the beam, rotation ``rot``, height ``z``."""

from __future__ import annotations

import logging
import math

from epics import caput
from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignal, EpicsSignalRO
from ophyd.positioner import PositionerBase

from .brief import BriefRepr

log = logging.getLogger(__name__)

MOVE_MARGIN = 10.0  # s beyond twice the time a move needs: then it has failed
STOP_TIMEOUT = 1.0  # s a motor's stop may take to reach its IOC, at most


def move_timeout(
    distance: float, velocity: float, accel_time: float, margin: float = MOVE_MARGIN
) -> float:
    """How long a move may take before it counts as failed (s): twice the trapezoid
    profile's time, plus ``margin``. A speed that is not known gives 120 s."""
    if not (math.isfinite(velocity) and velocity > 0):
        return 120.0
    return margin + 2 * (abs(distance) / velocity + 2 * max(accel_time, 0.0))


class Motor(BriefRepr, EpicsMotor):
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

    def stop(self, *, success: bool = False) -> None:
        """Stop the motor; with its IOC lost there is nothing to tell, but the move in
        progress still ends as asked (a suspension stops its moves with ``success``
        and replays them; a move left pending would fail the replay when the IOC is
        back and its first readback is in alarm)."""
        try:
            if self.motor_stop.connected:
                # bounded: ophyd's own put waits for a lost channel to connect again
                # for as long as ten years, in the RunEngine's thread (a suspension
                # stops the moves as the IOC dies: seen hanging a demo for 25 min)
                sent = caput(
                    self.motor_stop.pvname, 1, wait=False,
                    timeout=STOP_TIMEOUT, connection_timeout=STOP_TIMEOUT,
                )  # fmt: skip
                if sent is None:
                    log.warning("%s: stop not sent (its IOC did not answer)", self.name)
        except Exception as exc:  # the IOC went as we spoke to it
            log.warning("%s: stop not sent (%s)", self.name, exc)
        PositionerBase.stop(self, success=success)


class PositionCompare(Device):
    """The translation's position-compare output (PSO, Zebra, PandA): one pulse, to the
    detector's trigger input, as ``x`` passes ``start`` going ``direction``."""

    start = Cpt(EpicsSignal, "Start", kind="config")
    direction = Cpt(EpicsSignal, "Dir", string=True, kind="config")
    arm = Cpt(EpicsSignal, "Arm", kind="omitted", put_complete=True)
    pulses = Cpt(EpicsSignalRO, "Pulses_RBV", kind="omitted")


class TomoStage(Device):
    """Three motor records under one prefix: ``{prefix}x``, ``{prefix}rot``, ``{prefix}z``;
    and the position compare on ``x`` (``{prefix}pc:``), which starts fly-scan bursts."""

    x = Cpt(Motor, "x", kind="hinted")
    rot = Cpt(Motor, "rot", kind="hinted")
    z = Cpt(Motor, "z", kind="normal")
    pc = Cpt(PositionCompare, "pc:", kind="omitted")
