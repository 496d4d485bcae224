"""Run a scan preset (``plans.presets``) as fly scans, one run per z plane."""

from __future__ import annotations

import uuid
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.potentiostat import Potentiostat
from ..devices.stage import TomoStage
from .fly import check_fly, fly_xrdct
from .presets import preset_grid
from .xrdct import ScanLimitError


def preset_xrdct(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    name: str,
    *,
    poni_file: str,
    scale: int = 1,
    centre: float = 0.0,
    shutter_status: Signal | None = None,
    pstat: Potentiostat | None = None,
    sample: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
    **overrides: float,
) -> MsgGenerator[None]:
    """Fly-scan preset ``name`` (``plans.presets``); one run per z plane.

    Every plane is checked against the motor limits and speeds before anything moves;
    a refusal names the preset and the value that does not fit.
    """
    grid = preset_grid(name, centre=centre, z0=float(stage.z.position), scale=scale, **overrides)
    try:
        check_fly(stage, grid.translations, grid.exposure)
        lo, hi = stage.z.limits
        if lo != hi and not all(lo <= z <= hi for z in grid.z):
            raise ScanLimitError(f"{stage.z.name}: planes {grid.z[0]:g}…{grid.z[-1]:g} outside")
    except ScanLimitError as exc:
        n, step = len(grid.translations), grid.translations[1] - grid.translations[0]
        raise ScanLimitError(
            f"preset {name!r} ({n} translations x {step:g} mm = {n * step:g} mm, "
            f"{len(grid.angles)} angles, {grid.exposure:g} s): {exc}"
        ) from exc
    preset_md = {"preset": name, "preset_scale": scale, "preset_overrides": overrides}
    n_z = len(grid.z)
    dz = grid.z[1] - grid.z[0] if n_z > 1 else 0.0
    volume_id = str(uuid.uuid4())  # the planes' files become one volume file

    def planes() -> MsgGenerator[None]:
        for k, z in enumerate(grid.z):
            if len(grid.z) > 1:
                yield from bps.mv(stage.z, z)
            yield from fly_xrdct(
                det,
                stage,
                monitor,
                grid.angles,
                grid.translations,
                poni_file=poni_file,
                shutter_status=shutter_status,
                pstat=pstat,
                sample=sample,
                md={**preset_md, "z": z, "z_index": k, **(md or {})},
                volume=(
                    {"id": volume_id, "index": k, "n": n_z, "z0": grid.z[0], "dz": dz}
                    if n_z > 1
                    else None
                ),
            )

    old_exposure = det.exposure.get()
    yield from bps.mv(det.exposure, grid.exposure)
    yield from bpp.finalize_wrapper(planes(), bps.mv(det.exposure, old_exposure))
