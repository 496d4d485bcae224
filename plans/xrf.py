"""What a scan with an energy-dispersive detector tells the processor of its spectra."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..devices.sdd import EnergyDispersiveDetector
from ..materials.xrf_lines import XrfError, lines_within

MAX_LIVE_TIME = 60.0  # s: the SDD's longest count


def xrf_md(
    sdd: EnergyDispersiveDetector, elements: Sequence[str], live_time: float
) -> dict[str, Any]:
    """The ``xrf`` entry of a scan's metadata; refuses, before anything moves, elements
    whose K lines the SDD's energy range misses, and a count time it cannot take."""
    if not elements:
        raise XrfError(f"{sdd.name}: name the elements to map (e.g. elements=('Mn',))")
    if not 0 < live_time <= MAX_LIVE_TIME:
        raise XrfError(
            f"{sdd.name}: count time {live_time} s must be within (0, {MAX_LIVE_TIME:g}]"
        )
    offset, slope, channels = sdd.calibration()
    for element in elements:
        try:
            lines_within(element, offset, offset + slope * (channels - 1))
        except XrfError as exc:
            raise XrfError(f"{sdd.name}: {exc}") from None
    return {
        "key": sdd.spectrum.name,
        "detector": sdd.name,
        "elements": list(elements),
        "offset_kev": offset,
        "slope_kev": slope,
        "channels": channels,
        "live_time": float(live_time),
    }
