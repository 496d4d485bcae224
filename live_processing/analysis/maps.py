"""Maps from a reconstructed volume (ny, nx, n_q): integrated intensity in a q window."""

from __future__ import annotations

import numpy as np


def window_map(
    volume: np.ndarray, q: np.ndarray, centre: float, half_width: float, background: bool = True
) -> np.ndarray:
    """Sum of ``volume`` over ``|q - centre| < half_width`` per voxel.

    With ``background``, the mean of two flanking windows (from 2 to 3 half-widths away)
    is subtracted per bin: a local linear background under a Bragg peak.
    """
    win = np.abs(q - centre) < half_width
    if not win.any():
        raise ValueError(
            f"q window {centre:.3f} ± {half_width:.3f} 1/Å is outside q [{q[0]:.3f}, {q[-1]:.3f}]"
        )
    peak = volume[..., win].sum(axis=-1)
    if not background:
        return peak
    dist = np.abs(q - centre)
    side = (dist >= 2 * half_width) & (dist < 3 * half_width)
    if not side.any():
        return peak
    return peak - volume[..., side].mean(axis=-1) * win.sum()
