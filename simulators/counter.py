# mypy: disable-error-code="no-redef"
# (caproto: the putter decorators redefine the pvproperty by design)
"""A counting diode channel, as a scaler or electrometer serves one over Channel Access.

``{prefix}Time`` is the count time (s). A put of 1 to ``{prefix}Count`` counts for that
long and completes (a CA put-callback) once ``{prefix}Rate`` holds the mean rate
(counts/s) over the count, measured where the stage is while it counts; ``Count``
returns to 0. A count is the diode's charge: its noise is that of ``photons_per_count``
photons each. A monitored diode's value can be up to its scan period old; a counted one
belongs to the point it was counted at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from caproto.server import PVGroup, pvproperty

MAX_TIME = 60.0  # s: the longest count
T = TypeVar("T")


def check_count_time(value: float, what: str) -> None:
    """Refuse a count time outside (0, :data:`MAX_TIME`] s, naming the channel."""
    if not 0 < float(value) <= MAX_TIME:
        raise ValueError(f"{what} {value} s: must be within (0, {MAX_TIME:g}]")


async def at_mid_count(t: float, sample: Callable[[], T]) -> T:
    """Count for ``t`` s; what ``sample`` gives at mid-count (where the stage is then)."""
    await asyncio.sleep(t / 2)
    value = sample()
    await asyncio.sleep(t / 2)
    return value


class CounterGroup(PVGroup):
    """``Count`` (put 1, completes when done), ``Time`` (s), ``Rate`` (counts/s)."""

    Count = pvproperty(value=0)
    Time = pvproperty(value=0.005, precision=4, units="s")
    Rate = pvproperty(value=0.0, precision=1, units="counts/s", read_only=True)

    def __init__(
        self, *args, source: str, photons_per_count: float = 1000.0, seed: int = 3, **kwargs
    ) -> None:
        self._source = source  # the parent's method: counts/s expected where the stage is
        self._gain = photons_per_count  # a count is a charge: its noise is the photons'
        self._rng = np.random.default_rng(seed)
        super().__init__(*args, **kwargs)

    @Time.putter
    async def Time(self, instance, value):
        check_count_time(value, "count time")
        return value

    @Count.putter
    async def Count(self, instance, value):
        if not value:
            return 0
        t = float(self.Time.value)
        rate = await at_mid_count(t, getattr(self.parent, self._source))
        expected = max(float(rate), 0.0) * t
        counts = self._rng.poisson(expected * self._gain) / self._gain
        await self.Rate.write(float(counts) / t)
        return 0
