"""Equivalent-circuit model of a LixMn2O4 | Li cell.

State: lithium content by coulomb counting in two reservoirs (a kinetic "two-tank"
model): the particles' surface layer (fraction ``alpha`` of the capacity), which the
current fills or empties and whose content sets the open-circuit voltage, and the
bulk, which exchanges lithium with the surface with time constant ``tau``. This is what
makes a constant-voltage hold taper its current over tens of minutes and the voltage
relax at open circuit. Plus R0 and one RC pair. Terminal voltage
``V = OCV(x_surface) + I·R0 + V_rc``, current positive on charge (x decreases).

OCV(x) is the Doyle–Fuller–Newman (1996) fit for LiyMn2O4 on the 4 V plateau, joined
smoothly to the ~2.95 V plateau of the Li1+yMn2O4 tetragonal region (x > 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FARADAY_MAH = 3.6  # coulombs per mAh


def ocv(x: float) -> float:
    """Open-circuit voltage (V vs Li) at lithium content ``x`` of LixMn2O4."""
    if x < 0.15:  # nearly all lithium out: the voltage climbs steeply
        return ocv(0.15) + 30.0 * (0.15 - x)
    if x <= 1.0:
        y = min(x, 0.996)
        return (
            4.19829
            + 0.0565661 * math.tanh(-14.5546 * y + 8.60942)
            - 0.0275479 * ((0.998432 - y) ** -0.492465 - 1.90111)
            - 0.157123 * math.exp(-0.04738 * y**8)
            + 0.810239 * math.exp(-40.0 * (y - 0.133875))
        )
    # 3 V region: steep drop past x = 1, a flat two-phase plateau, and the end of
    # discharge as x approaches 2 (Li2Mn2O4)
    v1 = ocv(1.0)
    t = min(x - 1.0, 1.0)
    return 2.95 - 0.05 * t + (v1 - 2.95) * math.exp(-t / 0.01) - 0.9 * math.exp((t - 1.0) / 0.03)


@dataclass
class Battery:
    """The cell: capacity (mAh for Δx = 1), surface/bulk exchange, R0 and an RC pair."""

    capacity_mah: float = 0.05
    x: float = 0.98  # mean lithium content (initial value: surface = bulk = x)
    alpha: float = 0.3  # surface share of the capacity
    tau: float = 500.0  # s, surface-bulk exchange
    r0: float = 150.0
    r1: float = 400.0
    c1: float = 0.05
    v_rc: float = 0.0

    def __post_init__(self) -> None:
        self.x_surface = self.x
        self.x_bulk = self.x

    @property
    def capacity_c(self) -> float:
        return self.capacity_mah * FARADAY_MAH

    def voltage(self, current: float) -> float:
        return ocv(self.x_surface) + current * self.r0 + self.v_rc

    def step(self, current: float, dt: float) -> None:
        """Advance ``dt`` seconds (≪ ``tau``) at constant ``current`` (A, + = charge)."""
        a = self.alpha
        exchange = (self.x_surface - self.x_bulk) / self.tau * dt
        self.x_surface += -current * dt / (a * self.capacity_c) - exchange
        self.x_bulk += exchange * a / (1 - a)
        self.x_surface = min(max(self.x_surface, 0.05), 2.0)
        self.x_bulk = min(max(self.x_bulk, 0.05), 2.0)
        self.x = a * self.x_surface + (1 - a) * self.x_bulk
        tau = self.r1 * self.c1
        v_inf = current * self.r1
        self.v_rc = v_inf + (self.v_rc - v_inf) * math.exp(-dt / tau)

    def current_for_voltage(self, v_set: float) -> float:
        """Current that holds the terminal voltage at ``v_set`` now (CV mode)."""
        return (v_set - ocv(self.x_surface) - self.v_rc) / self.r0
