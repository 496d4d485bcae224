"""Equivalent-circuit model of a LixMn2O4 | Li cell.

State: lithium content x of LixMn2O4 (1 = discharged, ~0.2 = charged) by coulomb
counting, and the voltage across one RC pair. Terminal voltage
``V = OCV(x) + I·R0 + V_rc``, current positive on charge (x decreases).
OCV(x) is the Doyle–Fuller–Newman (1996) fit for LiyMn2O4 on the 4 V plateau,
joined smoothly to the ~2.95 V plateau of the Li1+yMn2O4 tetragonal region (x > 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FARADAY_MAH = 3.6  # coulombs per mAh


def ocv(x: float) -> float:
    """Open-circuit voltage (V vs Li) at lithium content ``x`` of LixMn2O4."""
    if x <= 1.0:
        y = min(max(x, 0.15), 0.996)
        return (
            4.19829
            + 0.0565661 * math.tanh(-14.5546 * y + 8.60942)
            - 0.0275479 * ((0.998432 - y) ** -0.492465 - 1.90111)
            - 0.157123 * math.exp(-0.04738 * y**8)
            + 0.810239 * math.exp(-40.0 * (y - 0.133875))
        )
    # 3 V region: steep drop past x = 1, then a flat two-phase plateau
    v1 = ocv(1.0)
    t = min(x - 1.0, 1.0)
    return 2.95 - 0.05 * t + (v1 - 2.95) * math.exp(-t / 0.01)


@dataclass
class Battery:
    """The cell: capacity (mAh for Δx = 1), R0 (Ω), one RC pair (Ω, F)."""

    capacity_mah: float = 0.05
    x: float = 0.98
    r0: float = 150.0
    r1: float = 400.0
    c1: float = 0.05
    v_rc: float = 0.0

    @property
    def capacity_c(self) -> float:
        return self.capacity_mah * FARADAY_MAH

    def voltage(self, current: float) -> float:
        return ocv(self.x) + current * self.r0 + self.v_rc

    def step(self, current: float, dt: float) -> None:
        """Advance ``dt`` seconds at constant ``current`` (A, + = charge)."""
        self.x -= current * dt / self.capacity_c
        self.x = min(max(self.x, 0.05), 1.9)
        tau = self.r1 * self.c1
        v_inf = current * self.r1
        self.v_rc = v_inf + (self.v_rc - v_inf) * math.exp(-dt / tau)

    def current_for_voltage(self, v_set: float) -> float:
        """Current that holds the terminal voltage at ``v_set`` now (CV mode)."""
        return (v_set - ocv(self.x) - self.v_rc) / self.r0
