"""A projection map in the live processor (start documents with ``projection_map``).

Each event says which point of the x × z grid a detector frame (and an SDD spectrum)
belongs to; each frame is integrated as it comes and placed once its event is in.
When the stop is in and every frame the events named has come, the file is written:
Bragg-peak maps (normalised to their brightest point, the first three as RGB) and,
with an SDD, element maps (:mod:`..files.map_file`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...protocols.processing import QWindow
from ...protocols.projection_map import MapGeometry
from ...protocols.xrdct import point_of_event
from ..analysis.qscreen import window_intensity
from ..analysis.xrf_fit import XrfFitter
from ..integration.integrate import Integrator

Frame = tuple[str, int]  # (series key, image id)


@dataclass
class MapRun:
    """One projection map: its grid, frames, spectra and Bragg windows."""

    uid: str
    stem: str
    geometry: MapGeometry
    integrator: Integrator
    windows: list[QWindow]
    patterns: np.ndarray  # (n_z, n_x, n_q), NaN until a frame came
    monitor: np.ndarray  # (n_z, n_x)
    fitter: XrfFitter | None = None
    spectra: np.ndarray | None = None  # (n_z, n_x, channels)
    series: list[str] = field(default_factory=list)
    cell_of_frame: dict[Frame, tuple[int, int]] = field(default_factory=dict)
    waiting: dict[Frame, np.ndarray] = field(default_factory=dict)  # integrated, no event yet
    stop_seen_at: float | None = None
    start_time: float = field(default_factory=time.time)

    @classmethod
    def begin(
        cls, uid: str, stem: str, geometry: MapGeometry, integrator: Integrator,
        windows: list[QWindow], start_time: float,
    ) -> MapRun:  # fmt: skip
        """An empty map; an SDD's spectra are kept when the geometry names one."""
        shape = (len(geometry.zs), len(geometry.xs))
        fitter, spectra = None, None
        if geometry.xrf:
            x = geometry.xrf
            fitter = XrfFitter(
                [str(e) for e in x["elements"]],
                float(x["offset_kev"]),
                float(x["slope_kev"]),
                int(x["channels"]),
            )
            spectra = np.zeros((*shape, fitter.energies.size), dtype=np.int32)
        return cls(
            uid, stem, geometry, integrator, windows,
            np.full((*shape, integrator.q.size), np.nan, dtype=np.float32),
            np.full(shape, np.nan), fitter, spectra, start_time=start_time,
        )  # fmt: skip

    def on_event(self, series: str, seq_num: int, data: dict[str, Any]) -> None:
        """A primary event: its point's frame, monitor and spectrum."""
        g = self.geometry
        i, j = point_of_event(seq_num, len(g.zs), len(g.xs), g.snake)
        self.monitor[i, j] = float(data[g.monitor_key])
        if self.spectra is not None:
            self.spectra[i, j] = np.asarray(data[g.xrf["key"]])
        frame = (series, int(data[g.frame_key]))
        self.cell_of_frame[frame] = (i, j)
        if frame in self.waiting:
            self.patterns[i, j] = self.waiting.pop(frame)

    def on_frame(self, series: str, image_id: int, pixels: np.ndarray) -> None:
        """A detector frame of ``series``: integrated now, placed when its event is in."""
        pattern = self.integrator.integrate(pixels)[1]
        cell = self.cell_of_frame.get((series, image_id))
        if cell is None:
            self.waiting[series, image_id] = pattern
        else:
            self.patterns[cell] = pattern

    def placed(self) -> int:
        return int(np.isfinite(self.patterns[..., 0]).sum())

    def complete(self) -> bool:
        """The stop is in and every frame the events named has been placed."""
        return self.stop_seen_at is not None and self.placed() >= len(self.cell_of_frame)

    def bragg_maps(self) -> dict[str, np.ndarray]:
        """Each window's background-subtracted intensity per monitor count, normalised to
        its brightest point (seed 004's maps of normalised Bragg-peak intensities)."""
        mon = np.where(self.monitor > 0, self.monitor, np.nan)
        patterns = self.patterns.astype(float)  # once for every window
        out: dict[str, np.ndarray] = {}
        for w in self.windows:
            m = window_intensity(patterns, self.integrator.q, w) / mon
            top = np.nanmax(m) if np.isfinite(m).any() else np.nan
            out[w.name] = m / top if top and np.isfinite(top) and top > 0 else m
        return out

    def element_maps(self) -> dict[str, np.ndarray]:
        """Each element's fitted K-family counts per second, monitor-normalised."""
        if self.fitter is None or self.spectra is None:
            return {}
        live = float(self.geometry.xrf.get("live_time", 1.0))
        mon = np.where(self.monitor > 0, self.monitor, np.nan)
        ref = float(np.nanmedian(mon)) if np.isfinite(mon).any() else 1.0
        rates = self.fitter.areas(self.spectra) / live * (ref / mon)[..., None]
        return {el: rates[..., k] for k, el in enumerate(self.fitter.elements)}
