"""SAXS/WAXS-CT of one slice (seed ``003``): the detector moved between its positions.

:func:`swaxs_ct` acquires the slice as two XRD-CT runs, first with the detector at its
WAXS position, then at its SAXS position (≈ 6 m, behind the flight tube), and brings
the detector back to WAXS, also when the pair fails or is aborted. Both runs carry the
pair's id and every position's geometry (its distance and PONI text,
:func:`detector_positions`) in their start documents; the processor integrates each
with its own geometry, corrects the SAXS one for transmission and maps d* from it. As
one protocol step it is a ``scan(md)`` like the others (``functools.partial`` it with
the devices).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.potentiostat import Potentiostat
from ..devices.stage import Motor, TomoStage
from ..protocols.processing import TECHNIQUES
from .xrdct import check_limits, check_points, move_within, xrdct_scan


class SwaxsError(ValueError):
    """A SAXS/WAXS scan that cannot run as asked (names the thing and the value)."""


def detector_positions(waxs_poni: str | Path, saxs_poni: str | Path) -> dict[str, dict[str, Any]]:
    """Each position's geometry from its PONI file: the distance motor stands at the
    PONI's sample–detector distance (mm)."""
    from pyFAI.io.ponifile import PoniFile

    out: dict[str, dict[str, Any]] = {}
    for technique, path in zip(TECHNIQUES, (waxs_poni, saxs_poni), strict=True):
        path = Path(path)
        try:
            text = path.read_text()
            distance = float(PoniFile(str(path)).dist) * 1000.0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"{technique} geometry {path}: cannot read it as a PONI ({exc})"
            raise SwaxsError(msg) from None
        out[technique] = {"distance": distance, "poni_file": str(path), "poni": text}
    if out["saxs"]["distance"] <= out["waxs"]["distance"]:
        raise SwaxsError(
            f"SAXS distance {out['saxs']['distance']:g} mm must be beyond the WAXS distance "
            f"{out['waxs']['distance']:g} mm"
        )
    return out


def swaxs_ct(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    distance: Motor,
    angles: Sequence[float],
    translations: Sequence[float],
    *,
    positions: dict[str, dict[str, Any]],
    transmission: Signal | None,
    pstat: Potentiostat | None = None,
    sample: dict[str, Any] | None = None,
    exposures: dict[str, float] | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """WAXS-CT then SAXS-CT of the slice at the stage's height, one run each.

    Parameters
    ----------
    det, stage, monitor
        Streaming detector, tomography stage, beam monitor.
    distance
        The detector's distance motor (mm from the sample).
    angles, translations
        The grid of both scans (deg, mm).
    positions
        :func:`detector_positions`: ``{"waxs": {...}, "saxs": {...}}``.
    transmission
        The transmitted-beam diode, read at every point: SAXS-CT is corrected with it.
    exposures
        s per frame at a position (``{"saxs": 0.05}``: SAXS often counts longer); the
        detector's exposure where not given, and again after the pair.
    pstat, sample, md
        As :func:`.xrdct.xrdct_scan` (each run's V/I log; metadata for both runs).
    """
    if transmission is None:
        raise SwaxsError(
            "SAXS-CT needs the transmitted-beam diode (the transmission correction): "
            "[epics] transmission is not set"
        )
    missing = [t for t in TECHNIQUES if t not in positions]
    if missing:
        raise SwaxsError(f"positions: no geometry for {', '.join(missing)}")
    check_limits(stage, angles, translations)
    targets = [float(positions[t]["distance"]) for t in TECHNIQUES]
    check_points(distance, targets)  # both positions within the motor's limits, or none
    given = float(det.exposure.get())
    exposure = {t: float((exposures or {}).get(t, given)) for t in TECHNIQUES}
    for value in exposure.values():
        det.exposure.check_value(value)  # refused by name before anything moves
    pair = uuid.uuid4().hex
    timeout = distance.timeout_for(max(targets) - min(targets))

    def both() -> MsgGenerator[None]:
        for technique in TECHNIQUES:
            yield from move_within({distance: positions[technique]["distance"]}, timeout)
            yield from bps.mv(det.exposure, exposure[technique])
            yield from xrdct_scan(
                det, stage, monitor, angles, translations,
                poni_file=positions[technique]["poni_file"], pstat=pstat, sample=sample,
                transmission=transmission,
                swaxs={"id": pair, "technique": technique, "positions": positions},
                md={**(md or {}), "technique": technique},
            )  # fmt: skip

    def back() -> MsgGenerator[None]:
        # whatever happened: a later plain scan, processed with the WAXS geometry, must
        # not find the detector 6 m away
        yield from bps.mv(det.exposure, given)
        yield from move_within({distance: positions["waxs"]["distance"]}, timeout)

    yield from bpp.finalize_wrapper(both(), back())
