"""The electrode's mid-depth along z, from transmission.

:func:`find_mid_depth` steps the stage height across the cell and, at each height,
counts the transmitted beam on a few lines across the sample. Outside the electrode the
beam crosses only the cell body; inside, the electrode absorbs too. The electrode's
edges are where the summed absorbance crosses halfway between its level outside and
its level inside (interpolated between steps); the stage goes to their middle.
"""

from __future__ import annotations

import logging
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.centring import CountingDiode
from ..devices.stage import TomoStage
from .alignment_fit import AlignmentError
from .xrdct import ScanLimitError, check_points

log = logging.getLogger(__name__)

MIN_CONTRAST = 0.01  # summed absorbance between outside and inside the electrode, at least


def electrode_edges(z: np.ndarray, absorbance: np.ndarray) -> tuple[float, float]:
    """(lower, upper) heights where ``absorbance`` crosses halfway between its lowest and
    highest; the profile must fall below halfway at both ends of the scan."""
    z, a = np.asarray(z, float), np.asarray(absorbance, float)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < MIN_CONTRAST:
        raise AlignmentError(
            f"no electrode in z {z[0]:g}…{z[-1]:g} mm: the absorbance changes by "
            f"{hi - lo:.4f} (at least {MIN_CONTRAST:g})"
        )
    half = (lo + hi) / 2
    above = np.flatnonzero(a > half)
    first, last = int(above[0]), int(above[-1])
    if first == 0 or last == a.size - 1:
        raise AlignmentError(
            f"the electrode reaches an end of the z scan ({z[0]:g}…{z[-1]:g} mm): scan a wider span"
        )

    def cross(i: int, j: int) -> float:  # between points i (below) and j (above)
        return float(z[i] + (half - a[i]) / (a[j] - a[i]) * (z[j] - z[i]))

    return cross(first - 1, first), cross(last + 1, last)


def find_mid_depth(
    stage: TomoStage,
    counter: CountingDiode,
    *,
    span: float = 0.3,
    step: float = 0.005,
    lines: tuple[float, ...] = (-0.3, 0.0, 0.3),
    count_time: float = 0.005,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, float]]:
    """Scan ``z`` over ``span`` mm around where it is, every ``step``, counting the
    transmitted beam at ``x`` offsets ``lines`` (mm, from where ``x`` is: on the axis
    after :func:`.alignment.align_roi`); then move ``z`` to the electrode's middle and
    ``x`` back. Returns ``z_low``, ``z_high``, ``mid``, ``thickness`` (mm)."""
    if not (step > 0 and span >= 10 * step):
        raise ScanLimitError(f"depth span {span:g} mm and step {step:g} mm: need span ≥ 10 steps")
    z0, x0 = float(stage.z.position), float(stage.x.position)
    n = round(span / step) + 1
    zs = z0 + (np.arange(n) - (n - 1) / 2) * step
    xs = [x0 + d for d in lines]
    check_points(stage.z, list(zs))
    check_points(stage.x, xs)
    found = {k: Signal(name=f"depth_{k}", value=0.0) for k in ("z_low", "z_high", "mid")}
    absorbance: list[float] = []
    run_md = {
        "plan_name": "find_mid_depth",
        "scan_kind": "depth",
        "depth": {"span": span, "step": step, "lines": list(lines)},
        **(md or {}),
    }

    @bpp.run_decorator(md=run_md)
    def scan() -> MsgGenerator[None]:
        yield from bps.mv(counter.count_time, count_time)
        for z in zs:
            yield from bps.mv(stage.z, float(z))
            total = 0.0
            for x in xs:
                yield from bps.mv(stage.x, x)
                reading = yield from bps.trigger_and_read([counter, stage.z, stage.x])
                total -= float(np.log(max(reading[counter.rate.name]["value"], 1e-9)))
            absorbance.append(total)
        z_low, z_high = electrode_edges(zs, np.asarray(absorbance))
        for key, value in (("z_low", z_low), ("z_high", z_high), ("mid", (z_low + z_high) / 2)):
            yield from bps.mv(found[key], value)
        yield from bps.trigger_and_read(list(found.values()), name="depth")

    done: list[bool] = []

    def back() -> MsgGenerator[None]:  # x always; z too unless the electrode was found
        yield from bps.mv(stage.x, x0) if done else bps.mv(stage.x, x0, stage.z, z0)

    def scanned() -> MsgGenerator[None]:
        yield from scan()
        done.append(True)

    yield from bpp.finalize_wrapper(scanned(), back())
    result = {k: float(s.get()) for k, s in found.items()}
    result["thickness"] = result["z_high"] - result["z_low"]
    log.info(
        "electrode from z = %.4f to %.4f mm (%.4f mm): moving z to its middle, %.4f mm",
        result["z_low"], result["z_high"], result["thickness"], result["mid"],
    )  # fmt: skip
    yield from bps.mv(stage.z, result["mid"])
    return result
