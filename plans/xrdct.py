"""XRD-CT step scan: rotation outer, translation inner (snake), one frame per point."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.run_engine import WaitForTimeoutError
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.potentiostat import Potentiostat
from ..devices.sdd import EnergyDispersiveDetector
from ..devices.stage import TomoStage
from ..protocols.xrdct import KEY, PRIMARY, XrdctGeometry, scan_points
from .electrochemistry import cell_state, recorded
from .xrf import xrf_md

logger = logging.getLogger(__name__)


class ScanLimitError(ValueError):
    """A scan point outside a motor's soft limits; refused before any motion."""


def check_points(motor: Any, values: Sequence[float]) -> None:
    """Refuse positions of ``motor`` outside its soft limits, naming the first."""
    lo, hi = motor.limits
    if lo == hi:
        return
    bad = [v for v in values if not lo <= v <= hi]
    if bad:
        raise ScanLimitError(
            f"{motor.name}: scan point {bad[0]:g} {motor.egu} is outside the soft limits "
            f"[{lo:g}, {hi:g}] {motor.egu}"
        )


def check_limits(stage: TomoStage, angles: Sequence[float], translations: Sequence[float]) -> None:
    """Refuse a scan whose points leave the motors' soft limits, naming the value."""
    check_points(stage.x, translations)
    check_points(stage.rot, angles)


class MoveTimeoutError(TimeoutError):
    """A move that did not end in its time: names the motors, targets and the time."""


def reading_key(readable: Any) -> str:
    """The event key of a readable's main reading: its first hinted field (a device's,
    e.g. a counter's rate), else its name (a signal's)."""
    fields = getattr(readable, "hints", {}).get("fields") or [readable.name]
    return str(fields[0])


def move_within(targets: dict[Any, float], timeout: float) -> MsgGenerator[None]:
    """Move each motor to its target together; fail naming them after ``timeout`` s."""
    args = [v for motor, target in targets.items() for v in (motor, target)]
    try:
        yield from bps.mv(*args, timeout=timeout)
    except WaitForTimeoutError:
        where = ", ".join(
            f"{m.name} to {t:g} {getattr(m, 'egu', '')} (at {m.position:g})"
            for m, t in targets.items()
        )
        raise MoveTimeoutError(
            f"move of {where} did not end within {timeout:.1f} s: a hung controller or a lost IOC?"
        ) from None


def xrdct_scan(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    angles: Sequence[float],
    translations: Sequence[float],
    *,
    poni_file: str,
    pstat: Potentiostat | None = None,
    snake: bool = True,
    sample: dict[str, Any] | None = None,
    transmission: Signal | None = None,
    combine: dict[str, Any] | None = None,
    xrf: EnergyDispersiveDetector | None = None,
    elements: Sequence[str] = (),
    swaxs: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """Acquire one diffraction frame at every (angle, translation).

    Parameters
    ----------
    det, stage, monitor
        Streaming detector, tomography stage and beam-monitor signal.
    angles, translations
        Rotation angles (deg) and translation positions (mm).
    poni_file
        pyFAI geometry of the detector, recorded in the start document.
    pstat
        If given, its V/I log is recorded during the scan (``electrochemistry`` stream).
    snake
        Alternate the translation direction on odd rows.
    sample, md
        Sample description and extra start-document metadata.
    transmission
        A transmitted-beam diode, read at every point (for the transmission correction):
        a signal, or a counter that counts at each point (``CountingDiode``: counted
        for the frame's exposure, so each reading is the point's).
    combine
        ``{"id": ..., "role": "coarse" | "roi"}``: this scan is reconstructed with
        another (:func:`roi_coarse_scan`).
    xrf, elements
        An energy-dispersive detector counted at every point for the frame's exposure,
        and the elements whose K lines the processor maps (XRF-CT slices).
    swaxs
        This scan as one of a slice's SAXS/WAXS pair (:func:`.swaxs.swaxs_ct`).
    """
    xrf_info = xrf_md(xrf, elements, float(det.exposure.get())) if xrf is not None else {}
    angles = [float(a) for a in angles]
    translations = [float(x) for x in translations]
    check_limits(stage, angles, translations)
    geometry = XrdctGeometry(
        angles=angles,
        translations=translations,
        snake=snake,
        frame_key=det.frame_index.name,
        series_key=det.series_id.name,
        monitor_key=monitor.name,
        poni_file=str(poni_file),
        detector={"name": det.name, "exposure": float(det.exposure.get())},
        sample=sample or {},
        transmission_key=reading_key(transmission) if transmission is not None else "",
        combine=dict(combine or {}),
        xrf=xrf_info,
        swaxs=dict(swaxs or {}),
    )
    n_points = len(angles) * len(translations)
    _md = {
        "plan_name": "xrdct_scan",
        "scan_kind": "xrdct_step",
        "sample": sample or {},
        "detectors": [det.name, *([xrf.name] if xrf is not None else [])],
        "motors": [stage.rot.name, stage.x.name],
        "num_points": n_points,
        "num_intervals": n_points - 1,
        "hints": {"dimensions": [([stage.rot.name, stage.x.name], PRIMARY)]},
        KEY: geometry.to_md(),
        **(md or {}),
    }
    readables = [det, monitor, stage.x.user_readback, stage.rot.user_readback]
    if transmission is not None:
        readables.append(transmission)
    if xrf is not None:
        readables.append(xrf)

    def points() -> MsgGenerator[None]:
        count_time = getattr(transmission, "count_time", None)  # a counter's
        if count_time is not None:  # counts as long as each frame is exposed
            yield from bps.mv(count_time, float(det.exposure.get()))
        # nothing waits for ever on a motor (a hung controller, a lost IOC): every move
        # has a timeout for the longest move of its kind in this scan
        span = max(translations) - min(translations)
        to_row = max(stage.rot.timeout_for(max(angles) - min(angles)), stage.x.timeout_for(span))
        to_point = stage.x.timeout_for(span)
        row = -1
        for i, j in scan_points(len(angles), len(translations), snake):
            if i != row:
                row = i
                yield from bps.checkpoint()
                targets = {stage.rot: angles[i], stage.x: translations[j]}
                yield from move_within(targets, to_row)
            else:
                yield from move_within({stage.x: translations[j]}, to_point)
            yield from bps.trigger_and_read(readables, name=PRIMARY)

    @bpp.stage_decorator([det])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        if xrf is not None:  # counted as long as each frame is exposed
            yield from bps.mv(xrf.acquire_time, xrf_info["live_time"])
        if pstat is not None:
            yield from recorded(pstat, points, hold_if_idle=True)
        else:
            yield from points()

    if pstat is not None:  # the cell's state as the scan starts goes into its start document
        _md.update((yield from cell_state(pstat, sample)))
    yield from inner()


def roi_coarse_scan(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    coarse: tuple[Sequence[float], Sequence[float]],
    roi: tuple[Sequence[float], Sequence[float]],
    *,
    poni_file: str,
    pstat: Potentiostat | None = None,
    sample: dict[str, Any] | None = None,
    transmission: Signal | None = None,
    guard: int | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """A coarse scan of the whole sample, then a fine scan of its middle (seed 000).

    The two runs share a ``combine`` id in their ``xrdct`` metadata; the live processor
    reconstructs the ROI's disc from the ROI merged into the coarse sinogram (no
    truncation ring at its edge).

    Parameters
    ----------
    coarse, roi
        (angles in deg, translations in mm) of each scan; the ROI's translations must
        lie inside the coarse scan's, around the rotation axis, evenly stepped.
    guard
        Fine steps scanned beyond each end of the ROI (default: one coarse step's
        worth, as far as the coarse scan reaches). The disc reconstructed is the ROI's;
        the guard keeps the coarse scan's interpolation away from its edge (the ramp
        filter weighs the cells just outside most).
    Others as :func:`xrdct_scan`.
    """
    (c_angles, c_x), (r_angles, r_x) = coarse, roi
    if not (min(c_x) <= min(r_x) and max(r_x) <= max(c_x)):
        raise ScanLimitError(
            f"ROI translations {min(r_x):g}..{max(r_x):g} mm must lie inside the coarse "
            f"scan's {min(c_x):g}..{max(c_x):g} mm"
        )
    r_x, guard = guarded(c_x, r_x, guard)
    roi = (r_angles, r_x)
    check_limits(stage, [*c_angles, *r_angles], [*c_x, *r_x])
    link = uuid.uuid4().hex
    scan = partial(xrdct_scan, det, stage, monitor, poni_file=poni_file, pstat=pstat,
                   sample=sample, transmission=transmission)  # fmt: skip
    for role, (angles, translations) in (("coarse", coarse), ("roi", roi)):
        yield from scan(
            angles,
            translations,
            combine={"id": link, "role": role, **({"guard": guard} if role == "roi" else {})},
            md={**(md or {}), "scan_role": role, "combine_id": link},
        )


def guarded(
    coarse_x: Sequence[float], roi_x: Sequence[float], guard: int | None
) -> tuple[list[float], int]:
    """The ROI's translations with ``guard`` more steps at each end (default one coarse
    step's worth), as many as fit inside the coarse scan; and the guard taken."""
    x = np.asarray(roi_x, dtype=float)
    if x.size < 2:
        raise ScanLimitError(f"an ROI scan needs at least 2 translations, got {x.size}")
    step = float(x[1] - x[0])
    if guard is None:
        c_step = float(np.median(np.abs(np.diff(np.asarray(coarse_x, dtype=float)))))
        guard = round(c_step / abs(step))
    if guard < 0:
        raise ScanLimitError(f"ROI guard {guard} steps must be >= 0")
    room = min(x.min() - min(coarse_x), max(coarse_x) - x.max()) / abs(step)
    taken = int(min(guard, np.floor(room + 1e-9)))
    if taken < guard:
        logger.warning(
            "ROI guard: %d of %d steps fit inside the coarse scan at each end", taken, guard
        )
    ends = np.arange(1, taken + 1) * step
    return [*(x[0] - ends[::-1]), *x, *(x[-1] + ends)], taken


def interlaced_scans(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    n_angles: int,
    translations: Sequence[float],
    *,
    poni_file: str,
    sets: int = 2,
    count: int | None = None,
    window: int = 2,
    pstat: Potentiostat | None = None,
    sample: dict[str, Any] | None = None,
    transmission: Signal | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """Interlaced sub-scans, one run each, for a sliding-window reconstruction (seed 003).

    Sub-scan ``s`` takes angle set ``s % sets`` of :func:`.presets.interlaced_angles`
    (``n_angles`` over 180°, in ``sets`` sets): each alone a coarse tomogram. The runs
    share an interlaced-series id in their ``xrdct`` metadata; from the ``window``-th
    on, the live processor writes each with the slice of the last ``window`` sub-scans,
    stamped with their time window and the cell's state over it.

    ``count``: sub-scans to take (default ``sets``, one of each).
    """
    from .presets import interlaced_angles  # presets builds on this module

    order = interlaced_angles(n_angles, sets)
    per = n_angles // sets
    count = sets if count is None else count
    if count < 1 or not 1 <= window <= max(count, sets):
        raise ScanLimitError(
            f"interlaced scans: {count} sub-scans with a window of {window} (need at least "
            "one sub-scan, and a window of 1 up to the sub-scans or sets)"
        )
    check_limits(stage, order, translations)
    link = uuid.uuid4().hex
    scan = partial(xrdct_scan, det, stage, monitor, poni_file=poni_file, pstat=pstat,
                   sample=sample, transmission=transmission)  # fmt: skip
    for s in range(count):
        angles = order[(s % sets) * per : (s % sets + 1) * per]
        yield from scan(
            angles,
            translations,
            combine={"id": link, "role": "interlaced", "index": s, "window": window},
            md={**(md or {}), "scan_role": "interlaced", "combine_id": link, "subscan": s},
        )
