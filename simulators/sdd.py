# mypy: disable-error-code="no-redef"
# (caproto: the putter decorators redefine the pvproperty by design)
"""An energy-dispersive detector (SDD) on Channel Access, as an MCA-style IOC serves one.

``{prefix}AcquireTime`` is the live time (s). A put of 1 to ``{prefix}Acquire`` counts
for that long and completes (a CA put-callback) once ``{prefix}Spectrum_RBV`` holds the
spectrum (counts per channel, ``NumChannels_RBV`` of them), counted where the stage is
mid-count; ``Acquire`` returns to 0. Channel ``k``'s energy is ``EnergyOffset_RBV +
k × EnergySlope_RBV`` keV. ``TotalCounts_RBV`` is the spectrum's sum and
``DeadTime_RBV`` the dead-time share (%) a 1 µs shaping time gives at that rate;
the spectrum is of live time, as an MCA's.
"""

from __future__ import annotations

import numpy as np
from caproto.server import PVGroup, pvproperty

from .counter import at_mid_count, check_count_time
from .xrf import CHANNELS, OFFSET_KEV, SLOPE_KEV

SHAPING_S = 1.0e-6  # s of dead time each count costs (for DeadTime_RBV)


class SddGroup(PVGroup):
    """``Acquire`` (put 1, completes when done), ``AcquireTime`` (s), ``Spectrum_RBV``."""

    Acquire = pvproperty(value=0)
    AcquireTime = pvproperty(value=0.01, precision=4, units="s")
    Spectrum_RBV = pvproperty(value=[0] * CHANNELS, max_length=CHANNELS, read_only=True)
    NumChannels_RBV = pvproperty(value=CHANNELS, read_only=True)
    EnergyOffset_RBV = pvproperty(value=OFFSET_KEV, precision=4, units="keV", read_only=True)
    EnergySlope_RBV = pvproperty(value=SLOPE_KEV, precision=5, units="keV", read_only=True)
    TotalCounts_RBV = pvproperty(value=0, units="counts", read_only=True)
    DeadTime_RBV = pvproperty(value=0.0, precision=2, units="%", read_only=True)

    def __init__(self, *args, source: str, seed: int = 5, **kwargs) -> None:
        self._source = source  # the parent's method: counts/s per channel where the stage is
        self._rng = np.random.default_rng(seed)
        super().__init__(*args, **kwargs)

    def expected(self) -> np.ndarray:
        """The spectrum's expected rates now (counts/s per channel)."""
        rates = getattr(self.parent, self._source)()
        return np.clip(np.asarray(rates, dtype=float), 0.0, None)

    @AcquireTime.putter
    async def AcquireTime(self, instance, value):
        check_count_time(value, "SDD acquire time")
        return value

    @Acquire.putter
    async def Acquire(self, instance, value):
        if not value:
            return 0
        t = float(self.AcquireTime.value)
        rates = await at_mid_count(t, self.expected)
        counts = self._rng.poisson(rates * t)
        total = int(counts.sum())
        rate = total / t
        await self.Spectrum_RBV.write(counts.astype(np.int32).tolist())
        await self.TotalCounts_RBV.write(total)
        await self.DeadTime_RBV.write(100.0 * rate * SHAPING_S / (1.0 + rate * SHAPING_S))
        return 0
