"""A full-field tomography run in the live processor (``scan_kind`` ``tomo``).

Its events say which camera frame is which (``image_key``, angle); the frames come on
the camera's stream. Each is applied as soon as both are in: darks and flats averaged,
each projection into every slice of an :class:`..tomography.absorption.AbsorptionVolume`.
Once the stop is in and every frame its events named has come, the file is written
(:func:`..files.nxtomo.write_nxtomo`, with ASTRA's FBP of the finished sinogram).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files.nexus import ElectrochemistryLog
from ..files.nxtomo import write_nxtomo
from ..tomography.absorption import AbsorptionVolume

DARK, FLAT, PROJECTION = 2, 1, 0


@dataclass
class TomoRun:
    """One tomography run: what its documents said and what its frames gave."""

    uid: str
    stem: str
    md: dict[str, Any]  # the start document's ``tomo``
    series: list[str] = field(default_factory=list)
    wanted: dict[tuple[str, int], tuple[int, float, float]] = field(default_factory=dict)
    waiting: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    kept: list[tuple[int, float, float, np.ndarray]] = field(default_factory=list)
    volume: AbsorptionVolume | None = None
    stop_seen_at: float | None = None
    start_time: float = field(default_factory=time.time)
    pixel: float | None = None  # mm at the sample: the start's, else the stream's

    @property
    def angles(self) -> np.ndarray:
        return np.asarray(self.md["angles"], dtype=float)

    def on_event(self, series: str, data: dict[str, Any]) -> None:
        """A primary event: which frame of ``series`` it was."""
        frame = int(data[self.md["frame_key"]])
        key = int(data[self.md["image_key"]])
        angle = float(data[self.md["rotation_key"]])
        x = float(data.get(self.md["translation_key"], np.nan))
        self.wanted[series, frame] = (key, angle, x)
        if (series, frame) in self.waiting:
            self._apply(series, frame, self.waiting.pop((series, frame)))

    def on_frame(self, series: str, image_id: int, pixels: np.ndarray) -> None:
        """A camera frame of ``series``; kept until its event says what it is."""
        if (series, image_id) in self.wanted:
            self._apply(series, image_id, pixels)
        else:
            self.waiting[series, image_id] = np.array(pixels, copy=True)

    def _apply(self, series: str, image_id: int, pixels: np.ndarray) -> None:
        key, angle, x = self.wanted[series, image_id]
        frame = np.asarray(pixels, dtype=float)
        if self.volume is None:
            pixel = self.md.get("pixel") or self.pixel
            if not pixel:
                raise ValueError(f"tomography run {self.uid}: the camera's pixel size is not known")
            self.volume = AbsorptionVolume(self.angles, frame.shape, float(pixel))
        if key == DARK:
            self.volume.add_dark(frame)
        elif key == FLAT:
            self.volume.add_flat(frame)
        else:
            index = int(np.argmin(np.abs(self.angles - angle)))
            self.volume.add_projection(index, frame)
        self.kept.append((key, angle, x, np.asarray(pixels)))

    def complete(self) -> bool:
        """The stop is in and every frame the events named has been applied."""
        return self.stop_seen_at is not None and len(self.kept) == len(self.wanted)


def write_tomo(run: TomoRun, folder: Path, log: ElectrochemistryLog) -> Path:
    """The run's NXtomo file (every frame kept, in the order they came; ASTRA's volume;
    the cell's V/I ``log`` so far)."""
    if run.volume is None or not run.kept:
        raise ValueError(f"tomography run {run.uid}: no frame came")
    keys = np.array([k for k, _a, _x, _f in run.kept])
    return write_nxtomo(
        folder / f"{run.stem}.h5",
        start_uid=run.uid,
        frames=np.stack([f for _k, _a, _x, f in run.kept]),
        image_key=keys,
        angles=np.array([a for _k, a, _x, _f in run.kept]),
        x=np.array([x for _k, _a, x, _f in run.kept]),
        pixel_mm=run.volume.pixel,
        volume=run.volume.final(),
        log=log,
    )
