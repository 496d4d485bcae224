# mypy: disable-error-code="no-redef"
# (caproto: the putter/scan/startup decorators redefine the pvproperty by design)
"""A position-compare output on the translation axis (a motion controller's PSO, or a
Zebra/PandA gate): one pulse as the encoder passes ``Start`` going in ``Dir``.

Wired to the detector's trigger input, it starts a fly-scan row's burst exactly where the
row begins, whatever the control host is doing; the host only arms it (``Arm``, before
it starts the move). A burst armed on
a pulse that never comes (the axis stopped short: a suspended scan) is reported as a
burst of no frames, which the fly scan acquires again. PVs under
``P pc:``: ``Start`` (the axis' units), ``Dir`` (``Positive``/``Negative``), ``Arm``
(1 arms for one pulse) and ``Pulses_RBV`` (pulses sent).
"""

from __future__ import annotations

import asyncio
import logging
import time

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from .motor import TICK, SimMotor

DIRECTIONS = ["Positive", "Negative"]

log = logging.getLogger(__name__)


class PositionCompareGroup(PVGroup):
    """The compare unit of one axis (``axis``: the parent's attribute holding its
    :class:`SimMotor`)."""

    Start = pvproperty(value=0.0, precision=5, units="mm", doc="compare position")
    Dir = pvproperty(value="Positive", enum_strings=DIRECTIONS, dtype=ChannelType.ENUM)
    Arm = pvproperty(value=0, doc="1: arm for one pulse (the put completes once armed)")
    Pulses_RBV = pvproperty(value=0, read_only=True, doc="pulses sent")

    def __init__(self, *args, axis: str = "x", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._axis = axis
        self._armed_at = float("inf")

    @Arm.putter
    async def Arm(self, instance, value):
        # armed from now: a crossing from this moment on fires, however late this IOC's
        # event loop gets round to the detector waiting for it
        self._armed_at = time.monotonic() if value else float("inf")
        return value

    async def next_pulse(self, timeout: float) -> float | None:
        """Wait for the axis to pass ``Start`` in ``Dir``; return the pulse's monotonic time.

        None (no pulse, logged) if the axis moves and comes to rest without passing it,
        or after ``timeout`` s: a burst armed on a pulse that never comes is lost, not
        hung.
        """
        start = float(self.Start.value)
        direction = 1 if self.Dir.value == "Positive" else -1
        axis: SimMotor = getattr(self.parent, self._axis)
        deadline = time.monotonic() + timeout
        moved = False
        while (when := axis.crossing(start, direction, self._armed_at)) is None:
            moving = axis.moving
            if (moved and not moving) or time.monotonic() > deadline:
                log.warning(
                    "position compare: %s did not pass %g going %s (at %g); no pulse",
                    self._axis,
                    start,
                    self.Dir.value.lower(),
                    axis.position,
                )
                return None
            moved = moved or moving
            await asyncio.sleep(TICK / 5)
        await asyncio.sleep(max(when - time.monotonic(), 0.0))
        self._armed_at = float("inf")  # one pulse per arming
        await self.Arm.write(0)
        await self.Pulses_RBV.write(int(self.Pulses_RBV.value) + 1)
        return when
