"""Full-field absorption tomography: darks, flats, projections, flats (seed 002).

:func:`tomo_scan` is one run on an imaging camera (any :class:`FrameDetector`, e.g. a
``StreamingDetector`` on an areaDetector camera): ``n_darks`` frames with the shutter
closed, half the ``n_flats`` with the sample moved ``flat_offset`` mm out of the beam,
the projections at each angle (step rotation), then the other flats. Each event carries
the frame's ``image_key`` (NXtomo: 0 projection, 1 flat, 2 dark) with the camera's frame
index and the stage's angle, so the frames kept by the camera's file writer and the
stream are sorted out from the documents alone. :data:`TOMO_PRESETS` holds seed 002's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.stage import TomoStage
from .xrdct import ScanLimitError, check_limits

PROJECTION, FLAT, DARK = 0, 1, 2  # NXtomo image_key


@dataclass(frozen=True)
class TomoPreset:
    """A full-field scan: projections over ``span`` degrees, ``exposure`` s each."""

    n_projections: int
    span: float
    exposure: float
    n_flats: int
    n_darks: int


TOMO_PRESETS = {"seed002": TomoPreset(2505, 360.0, 0.02, 20, 21)}  # ID16B (seed 002)


def tomo_angles(n: int, span: float = 180.0) -> list[float]:
    """``n`` equally spaced angles over ``span`` (180 or 360) degrees, the end left out."""
    if span not in (180.0, 360.0) or n < 2:
        raise ScanLimitError(
            f"tomography: {n} projections over {span:g}°; need ≥ 2 over 180 or 360"
        )
    return np.linspace(0.0, span, n, endpoint=False).tolist()


def tomo_scan(
    camera: FrameDetector,
    stage: TomoStage,
    shutter: Any,
    monitor: Signal,
    angles: Sequence[float],
    *,
    n_flats: int = 20,
    n_darks: int = 21,
    flat_offset: float = 2.0,
    exposure: float = 0.02,
    pixel_mm: float | None = None,
    sample: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """One full-field scan (see the module). ``pixel_mm``: the camera's pixel at the
    sample (default: the pixel size its stream announces)."""
    angles = [float(a) for a in angles]
    x0 = float(stage.x.position)
    check_limits(stage, angles, [x0 + flat_offset])
    if n_flats < 2 or n_darks < 1:
        raise ScanLimitError(f"tomography: {n_flats} flats and {n_darks} darks; need ≥ 2 and ≥ 1")
    key = Signal(name="image_key", value=PROJECTION)
    before = n_flats // 2
    tomo = {
        "angles": angles, "n_flats": n_flats, "n_darks": n_darks, "flat_offset": flat_offset,
        "exposure": exposure, "camera": camera.name, "frame_key": camera.frame_index.name,
        "series_key": camera.series_id.name, "image_key": key.name, "x": x0,
        "rotation_key": stage.rot.name, "translation_key": stage.x.name, "pixel": pixel_mm,
    }  # fmt: skip
    run_md = {
        "plan_name": "tomo_scan",
        "scan_kind": "tomo",
        "tomo": tomo,
        "sample": sample or {},
        "detectors": [camera.name],
        "motors": [stage.rot.name],
        "num_points": len(angles) + n_flats + n_darks,
        **(md or {}),
    }
    fields = [camera, key, stage.rot, stage.x, monitor]

    def frames(kind: int, n: int) -> MsgGenerator[None]:
        yield from bps.mv(key, kind)
        for _ in range(n):
            yield from bps.trigger_and_read(fields)

    @bpp.stage_decorator([camera])
    @bpp.run_decorator(md=run_md)
    def inner() -> MsgGenerator[None]:
        yield from bps.mv(shutter, 0)
        yield from frames(DARK, n_darks)
        yield from bps.mv(shutter, 1)
        yield from bps.mv(stage.x, x0 + flat_offset)
        yield from frames(FLAT, before)
        yield from bps.mv(stage.x, x0)
        yield from bps.mv(key, PROJECTION)
        for angle in angles:
            yield from bps.mv(stage.rot, angle)
            yield from bps.trigger_and_read(fields)
        yield from bps.mv(stage.x, x0 + flat_offset)
        yield from frames(FLAT, n_flats - before)

    old = float(camera.exposure.get())
    yield from bps.mv(camera.exposure, exposure)
    yield from bpp.finalize_wrapper(inner(), bps.mv(camera.exposure, old, stage.x, x0))


def preset_tomo(
    camera: FrameDetector, stage: TomoStage, shutter: Any, monitor: Signal, name: str, **kw: Any
) -> MsgGenerator[None]:
    """:func:`tomo_scan` with a preset of :data:`TOMO_PRESETS` (``asdict`` gives its values)."""
    try:
        p = TOMO_PRESETS[name]
    except KeyError:
        raise ScanLimitError(
            f"unknown tomography preset {name!r}; presets: {', '.join(TOMO_PRESETS)}"
        ) from None
    settings = asdict(p)
    angles = tomo_angles(settings.pop("n_projections"), settings.pop("span"))
    yield from tomo_scan(camera, stage, shutter, monitor, angles, **{**settings, **kw})
