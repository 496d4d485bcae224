"""Q-screening (seeds 003, 004): integrated intensity of named q windows per voxel, minus a
local background, and false-colour RGB composites of any three maps.

A window is a q range with a name. It comes from the phase library (a phase's strongest
line, or an amorphous phase's halo clear of the other phases' lines) or from the user
(``"graphite003=1.82:1.90"``, seed 003's list). Its map is the volume summed over the
window's bins, each bin weighted by the share of it inside the window (so a map does
not jump as a window edge crosses a bin), less the straight line through the mean
levels of two flanks just outside it (a local linear background: what curves within a
window and its flanks stays).
"""

from __future__ import annotations

import numpy as np

from ...materials.phases import feature_window
from ...protocols.processing import QWindow

FLANK = 0.5  # each flank's width, in window widths


def parse_windows(text: str) -> list[QWindow]:
    """Comma-separated ``name=lo:hi`` windows."""
    return [QWindow.parse(part) for part in text.split(",") if part.strip()]


def windows_for(
    entries: tuple[str, ...], present: dict[str, float | None] | None = None
) -> list[QWindow]:
    """The windows of ``ProcessingSettings.qscreen``: a library phase's (:func:`phase_window`,
    an amorphous one's clear of the lines of the other phases listed, or of ``present``)
    or a ``name=lo:hi`` window as given."""
    if present is None:
        present = {e: None for e in entries if "=" not in e}
    return [QWindow.parse(e) if "=" in e else phase_window(e, present) for e in entries]


def phase_window(name: str, present: dict[str, float | None] | None = None) -> QWindow:
    """A phase's window from the library: a crystalline phase's strongest line (at its
    lattice parameter in ``present``, else the library's), background-subtracted; an
    amorphous phase's strongest halo clear of the other ``present`` phases' lines, as
    it is (its flanks are the halo too)."""
    centre, half, background = feature_window(name, present or {})
    return QWindow(name, centre - half, centre + half, background)


def _share(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Each bin's share inside [lo, hi] (bins centred on ``q``, edges halfway)."""
    edges = np.concatenate([[1.5 * q[0] - 0.5 * q[1]], (q[1:] + q[:-1]) / 2])
    edges = np.append(edges, 1.5 * q[-1] - 0.5 * q[-2])
    width = np.diff(edges)
    return np.clip((np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)) / width, 0.0, 1.0)


def window_intensity(volume: np.ndarray, q: np.ndarray, window: QWindow) -> np.ndarray:
    """The window's map over a volume (..., n_q): summed intensity less the straight-line
    background through its flanks (each :data:`FLANK` window widths wide). Only the
    window's and its flanks' bins are read."""
    if window.hi <= q[0] or window.lo >= q[-1]:
        raise ValueError(
            f"q window {window.name!r} {window.lo:g}..{window.hi:g} 1/Å is outside the data's "
            f"q range {q[0]:.3f}..{q[-1]:.3f}"
        )
    width = (window.hi - window.lo) * FLANK
    inside = _share(q, window.lo, window.hi)
    left = _share(q, window.lo - width, window.lo) * window.background
    right = _share(q, window.hi, window.hi + width) * window.background
    used = np.flatnonzero(inside + left + right)
    part, q = volume[..., used], q[used]
    inside, left, right = inside[used], left[used], right[used]
    total = part @ inside.astype(part.dtype)
    if left.sum() == 0 or right.sum() == 0:  # no background asked, or none to be had
        return total
    level_l = (part @ left.astype(part.dtype)) / left.sum()
    level_r = (part @ right.astype(part.dtype)) / right.sum()
    at_l, at_r = (q @ left) / left.sum(), (q @ right) / right.sum()
    centre = (q @ inside) / inside.sum()  # the line at the window's mean q, times its bins
    slope = (level_r - level_l) / (at_r - at_l)
    return total - (level_l + slope * (centre - at_l)) * inside.sum()


def screen(volume: np.ndarray, q: np.ndarray, windows: list[QWindow]) -> dict[str, np.ndarray]:
    """Every window's map, by name (names must differ)."""
    names = [w.name for w in windows]
    if len(set(names)) != len(names):
        raise ValueError(f"q windows need distinct names; got {', '.join(names)}")
    return {w.name: window_intensity(volume, q, w) for w in windows}


def rgb(
    red: np.ndarray, green: np.ndarray, blue: np.ndarray, percentiles: tuple[float, float] = (1, 99)
) -> np.ndarray:
    """A false-colour composite (ny, nx, 3) in [0, 1]: each map stretched between its
    ``percentiles`` (NaN shown black)."""
    out = []
    for m in (red, green, blue):
        finite = m[np.isfinite(m)]
        lo, hi = np.percentile(finite, percentiles) if finite.size else (0.0, 1.0)
        scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        out.append(np.nan_to_num(np.clip(scaled, 0.0, 1.0)))
    return np.stack(out, axis=-1).astype(np.float32)
