"""Sample alignment: find the rotation axis and put a region of interest on it.

:func:`align_roi` scans the transmitted beam across the sample at a few angles (one run,
``scan_kind`` ``alignment``), finds the axis and the sample's absorbance centre on the
rotating table (:mod:`.alignment_fit`), then moves the centring translations so that the
region of interest, given relative to that centre, sits on the axis, and the tomography
translation so that the beam goes through it. A fit it cannot trust moves nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.centring import CentringStage, CountingDiode
from ..devices.stage import TomoStage
from .alignment_fit import AlignmentError, fit_axis, projection_centre
from .xrdct import ScanLimitError, check_limits

log = logging.getLogger(__name__)

ANGLES = (0.0, 90.0, 180.0, 270.0)
MAX_RMS_STEPS = 2.0  # the projections' centres may scatter this many steps about the fit


def line(centre: float, span: float, step: float) -> np.ndarray:
    """Translations ``centre ± span/2`` every ``step`` (mm)."""
    if not (step > 0 and span >= 10 * step):
        raise ScanLimitError(
            f"alignment span {span:g} mm and step {step:g} mm: need span ≥ 10 steps"
        )
    n = round(span / step) + 1
    return centre + (np.arange(n) - (n - 1) / 2) * step


def _check_centring(centring: CentringStage, targets: tuple[float, float]) -> None:
    for motor, value in zip((centring.cx, centring.cy), targets, strict=True):
        lo, hi = motor.limits
        if lo != hi and not lo <= value <= hi:
            raise AlignmentError(
                f"{motor.name}: the region of interest needs {value:.4f} {motor.egu}, outside "
                f"the soft limits [{lo:g}, {hi:g}] {motor.egu}: remount the sample nearer "
                "the middle"
            )


def align_roi(
    stage: TomoStage,
    centring: CentringStage,
    counter: CountingDiode,
    *,
    span: float = 2.4,
    step: float = 0.02,
    angles: Sequence[float] = ANGLES,
    roi: tuple[float, float] = (0.0, 0.0),
    centre: float = 0.0,
    count_time: float = 0.005,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, float]]:
    """Transmission line scans (``span`` mm every ``step`` around ``centre``) at
    ``angles``; then the centring translations put ``roi`` (mm from the sample's
    absorbance centre, on the table at rotation 0) on the rotation axis, and ``x`` on
    the axis. Returns the fit and the moves: ``axis``, ``p``, ``q``, ``rms``, ``cx``, ``cy``.
    """
    xs = line(centre, span, step)
    check_limits(stage, list(angles), list(xs))
    fit_signals = {k: Signal(name=f"align_{k}", value=0.0) for k in ("axis", "p", "q", "rms")}
    centres: list[float] = []
    start = {"cx": float(centring.cx.position), "cy": float(centring.cy.position)}
    run_md = {
        "plan_name": "align_roi",
        "scan_kind": "alignment",
        "alignment": {"span": span, "step": step, "angles": list(angles), "roi": list(roi)},
        "centring_start": start,
        **(md or {}),
    }

    @bpp.run_decorator(md=run_md)
    def scan() -> MsgGenerator[None]:
        yield from bps.mv(counter.count_time, count_time)
        for angle in angles:
            yield from bps.mv(stage.rot, angle)
            rates = []
            for x in xs:
                yield from bps.mv(stage.x, float(x))
                reading = yield from bps.trigger_and_read([counter, stage.x, stage.rot])
                rates.append(float(reading[counter.rate.name]["value"]))
            centres.append(projection_centre(xs, np.asarray(rates), angle))  # refuse early
        fit = fit_axis(np.asarray(angles), np.asarray(centres))
        for key, sig in fit_signals.items():
            yield from bps.mv(sig, getattr(fit, key))
        yield from bps.trigger_and_read(list(fit_signals.values()), name="alignment")

    x0, rot0 = float(stage.x.position), float(stage.rot.position)
    done: list[bool] = []

    def scanned() -> MsgGenerator[None]:
        yield from scan()
        done.append(True)

    def back() -> MsgGenerator[None]:  # a failed scan leaves the stage where it was
        if not done:
            yield from bps.mv(stage.x, x0, stage.rot, rot0)

    yield from bpp.finalize_wrapper(scanned(), back())
    fit = {k: float(s.get()) for k, s in fit_signals.items()}
    if fit["rms"] > MAX_RMS_STEPS * step:
        raise AlignmentError(
            f"the projections' centres scatter {fit['rms']:.4f} mm about the axis fit (limit "
            f"{MAX_RMS_STEPS:g} steps = {MAX_RMS_STEPS * step:g} mm): the sample moved, or "
            "the beam; nothing was moved"
        )
    target = (start["cx"] - fit["p"] - roi[0], start["cy"] - fit["q"] - roi[1])
    _check_centring(centring, target)
    log.info(
        "alignment: axis at x = %.4f mm; region of interest %.4f, %.4f mm off it: "
        "moving cx to %.4f, cy to %.4f mm",
        fit["axis"], fit["p"] + roi[0], fit["q"] + roi[1], *target,
    )  # fmt: skip
    yield from bps.mv(centring.cx, target[0], centring.cy, target[1], stage.x, fit["axis"])
    return {**fit, "cx": target[0], "cy": target[1]}
