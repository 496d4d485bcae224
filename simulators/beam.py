# mypy: disable-error-code="no-redef"
# (caproto: the putter/scan/startup decorators redefine the pvproperty by design)
"""The stored beam (current, lifetime, top-ups) and the fast shutter of the simulated IOC."""

from __future__ import annotations

import math
import time

from caproto.server import PVGroup, pvproperty

REFERENCE_CURRENT = 200.0  # mA
TOPUP_DROP = 0.3  # share of the current lost between top-ups (the decay artefact)


class BeamGroup(PVGroup):
    """Stored beam with a finite lifetime; ``On`` drops and restores it."""

    Current = pvproperty(value=REFERENCE_CURRENT, precision=3, units="mA", read_only=True)
    On = pvproperty(value=1)
    Lifetime = pvproperty(value=3600.0, units="s")
    TopUp = pvproperty(value=0.0, units="s")  # top-up period; 0: none (plain decay)

    @TopUp.startup
    async def TopUp(self, instance, async_lib) -> None:
        await instance.write(float(self.parent.topup))

    @Current.scan(period=0.05)
    async def Current(self, instance, async_lib) -> None:
        await instance.write(self.current() if self.On.value else 0.0)

    def current(self) -> float:
        """The stored current now: a sawtooth of TOPUP_DROP per period with top-ups."""
        t = time.monotonic() - self.parent.t0
        period = float(self.TopUp.value)
        if period > 0:
            tau = period / math.log(1 / (1 - TOPUP_DROP))
            return REFERENCE_CURRENT * math.exp(-(t % period) / tau)
        return REFERENCE_CURRENT * math.exp(-t / max(float(self.Lifetime.value), 1.0))


class ShutterGroup(PVGroup):
    """A fast shutter: ``Status`` follows ``Open`` after its travel time."""

    Open = pvproperty(value=1)
    Status = pvproperty(value=1, read_only=True)

    @Open.putter
    async def Open(self, instance, value):
        import asyncio

        await asyncio.sleep(0.02)
        await self.Status.write(1 if value else 0)
        return value
