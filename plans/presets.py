"""Scan presets from seed 001 (Finegan et al., ID15A), selectable by name, overridable.

Each preset is a grid of ``n_translations`` × ``step`` across the beam and
``n_angles`` over 180°, at ``exposure`` per frame; ``volume`` adds ``n_z`` planes
``z_step`` apart. :func:`preset_grid` turns one into the scan's positions, optionally
scaled down for tests (fewer points, same step and exposure, so the same motor speeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .xrdct import ScanLimitError


@dataclass(frozen=True)
class Preset:
    """An XRD-CT acquisition recipe (lengths in mm, time in s)."""

    n_translations: int
    step: float
    n_angles: int
    exposure: float = 0.01
    n_z: int = 1
    z_step: float = 0.0
    description: str = ""


PRESETS: dict[str, Preset] = {
    "broad": Preset(81, 0.050, 80, description="whole cell incl. PEEK holder"),
    "coarse": Preset(81, 0.020, 81, description="the electrode, coarse"),
    "roi": Preset(351, 0.001, 350, description="region of interest at 1 µm"),
    "volume": Preset(101, 0.002, 100, n_z=20, z_step=0.002, description="initial volume"),
    "degraded_coarse": Preset(151, 0.010, 120, description="degraded sample, coarse"),
    "degraded_roi": Preset(251, 0.001, 250, description="degraded sample, ROI"),
}


@dataclass(frozen=True)
class Grid:
    """Positions of one preset scan."""

    name: str
    angles: list[float]
    translations: list[float]
    z: list[float]
    exposure: float


def get_preset(name: str, **overrides: float) -> Preset:
    """A preset by name, with fields overridden (e.g. ``step=0.03``)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ScanLimitError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Preset)}
    if unknown:
        raise ScanLimitError(f"preset {name!r} has no field(s) {', '.join(sorted(unknown))}")
    return dataclasses.replace(preset, **overrides)  # type: ignore[arg-type]


def preset_grid(
    name: str, *, centre: float = 0.0, z0: float = 0.0, scale: int = 1, **overrides: float
) -> Grid:
    """The positions of preset ``name``; ``scale`` > 1 divides the point counts (tests)."""
    p = get_preset(name, **overrides)
    n_t = max(3, round(p.n_translations / scale))
    n_a = max(2, round(p.n_angles / scale))
    n_z = max(1, round(p.n_z / scale))
    translations = centre + (np.arange(n_t) - (n_t - 1) / 2) * p.step
    angles = np.linspace(0.0, 180.0, n_a, endpoint=False)
    z = z0 + np.arange(n_z) * p.z_step
    return Grid(name, angles.tolist(), translations.tolist(), z.tolist(), p.exposure)


def interlaced_angles(n_angles: int, k: int, span: float = 180.0) -> list[float]:
    """Seed 003's interlaced acquisition: ``k`` sub-scans, each covering ``span``.

    Sub-scan s takes angles ``(s + k·m) · span / n_angles`` (m = 0, 1, ...), so each one
    alone is a coarse but complete tomogram, and together they are the full fine set.
    The list is in acquisition order.
    """
    if k < 1 or n_angles % k:
        raise ScanLimitError(f"{n_angles} angles cannot be split into {k} interlaced sub-scans")
    step = span / n_angles
    return [(s + k * m) * step for s in range(k) for m in range(n_angles // k)]
