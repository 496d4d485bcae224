"""The cell's state over a time window, from the experiment's V/I log."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SECONDS_PER_HOUR = 3600.0


def cell_state(
    time: Sequence[float],
    voltage: Sequence[float],
    current: Sequence[float],
    start: float,
    stop: float,
) -> dict[str, float]:
    """Mean voltage (V) and current (A), and the charge passed (mAh), from start to stop.

    The charge is the trapezoid integral of the current over the readings inside the
    window. Empty when no reading falls inside it.
    """
    t = np.asarray(time, dtype=float)
    inside = (t >= start) & (t <= stop)
    if not inside.any():
        return {}
    v = np.asarray(voltage, dtype=float)[inside]
    i = np.asarray(current, dtype=float)[inside]
    tt = t[inside]
    charge = float(np.sum((i[1:] + i[:-1]) / 2 * np.diff(tt))) if tt.size > 1 else 0.0
    return {
        "mean_voltage": float(np.nanmean(v)),
        "mean_current": float(np.nanmean(i)),
        "charge_mah": charge * 1000.0 / SECONDS_PER_HOUR,
        "readings": float(inside.sum()),
    }
