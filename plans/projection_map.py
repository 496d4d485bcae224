"""Projection-mode mapping (seed 004): x × z at one angle, a frame (and a spectrum) a point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.sdd import EnergyDispersiveDetector
from ..devices.stage import TomoStage
from ..protocols.projection_map import KEY, MapGeometry
from ..protocols.xrdct import PRIMARY, scan_points
from .xrdct import check_points, move_within
from .xrf import xrf_md


def projection_map(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    xs: Sequence[float],
    zs: Sequence[float],
    *,
    angle: float = 0.0,
    poni_file: str,
    snake: bool = True,
    xrf: EnergyDispersiveDetector | None = None,
    elements: Sequence[str] = (),
    peaks: Sequence[str] = (),
    sample: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """A 2-D map of the sample seen at ``angle`` (deg): z rows (mm) outer, x (mm) inner,
    one diffraction frame at every point, and the SDD's spectrum counted as long when
    ``xrf`` is given. ``peaks`` name the Bragg peaks to map (library phases or
    ``name=lo:hi`` windows in 1/Å); the first three make its RGB map. Points outside a
    motor's soft limits are refused before anything moves. The processor makes element
    maps and RGB maps of Bragg-peak intensities."""
    xs, zs = [float(x) for x in xs], [float(z) for z in zs]
    if not xs or not zs:
        raise ValueError(f"projection map: {len(xs)} x and {len(zs)} z points; need both")
    check_points(stage.x, xs)
    check_points(stage.z, zs)
    check_points(stage.rot, [angle])
    exposure = float(det.exposure.get())
    xrf_info = xrf_md(xrf, elements, exposure) if xrf is not None else {}
    geometry = MapGeometry(
        xs=xs, zs=zs, angle=float(angle), snake=snake,
        frame_key=det.frame_index.name, series_key=det.series_id.name,
        monitor_key=monitor.name, poni_file=str(poni_file),
        detector={"name": det.name, "exposure": exposure}, sample=sample or {}, xrf=xrf_info,
        peaks=[str(p) for p in peaks],
    )  # fmt: skip
    n_points = len(xs) * len(zs)
    _md = {
        "plan_name": "projection_map",
        "scan_kind": "projection_map",
        "sample": sample or {},
        "detectors": [det.name, *([xrf.name] if xrf is not None else [])],
        "motors": [stage.z.name, stage.x.name],
        "num_points": n_points,
        "num_intervals": n_points - 1,
        "hints": {"dimensions": [([stage.z.name, stage.x.name], PRIMARY)]},
        KEY: geometry.to_md(),
        **(md or {}),
    }
    readables: list[Any] = [det, monitor, stage.x.user_readback, stage.z.user_readback]
    if xrf is not None:
        readables.append(xrf)

    def points() -> MsgGenerator[None]:
        to_row = max(stage.x.timeout_for(max(xs) - min(xs)), stage.z.timeout_for(max(zs) - min(zs)))
        row = -1
        for i, j in scan_points(len(zs), len(xs), snake):
            if i != row:
                row = i
                yield from bps.checkpoint()
                yield from move_within({stage.z: zs[i], stage.x: xs[j]}, to_row)
            else:
                yield from move_within({stage.x: xs[j]}, to_row)
            yield from bps.trigger_and_read(readables, name=PRIMARY)

    @bpp.stage_decorator([det])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        if xrf is not None:
            yield from bps.mv(xrf.acquire_time, exposure)
        yield from move_within({stage.rot: float(angle)}, stage.rot.timeout_for(360.0))
        yield from points()

    yield from inner()
