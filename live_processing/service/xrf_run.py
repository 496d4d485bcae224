"""The fluorescence of one step XRD-CT run: every spectrum, line areas and XRF-CT slices.

Each event of a scan with an SDD carries the spectrum counted at its point. The
processor keeps every spectrum, fits the named elements' K families
(:class:`..analysis.xrf_fit.XrfFitter`), normalises the areas to counts per second at
the run's first monitor reading, and back-projects each complete angle row into a
running reconstruction of the element maps, the XRD-CT's own
:class:`..tomography.incremental_fbp.IncrementalFBP` with the elements as channels, at
the diffraction's rotation axis. At the end the slices are made at the diffraction's
refined axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...materials.xrf_lines import XrfError
from ..analysis.xrf_fit import XrfFitter
from ..tomography.incremental_fbp import IncrementalFBP
from ..tomography.sinogram import fill_missing


@dataclass
class XrfResult:
    """What a run's file keeps of its fluorescence."""

    elements: list[str]
    energies: np.ndarray  # keV of each channel
    spectra: np.ndarray  # (n_angles, n_translations, channels) counts
    rates: np.ndarray  # (n_angles, n_translations, elements) counts/s, monitor-normalised
    missing: np.ndarray  # (n_angles, n_translations) bool: no spectrum came
    slices: np.ndarray  # (ny, nx, elements) per mm of path
    live_time: float  # s per spectrum
    detector: str


@dataclass
class XrfScan:
    """The processor's fluorescence state of one run (step scans only)."""

    fitter: XrfFitter
    key: str  # the spectrum's key in each event
    live_time: float
    detector: str
    spectra: np.ndarray
    rates: np.ndarray
    filled: np.ndarray
    fbp: IncrementalFBP
    monitor_ref: float = float("nan")
    errors: list[str] = field(default_factory=list)

    @classmethod
    def begin(
        cls, xrf: dict[str, Any], angles: np.ndarray, n_t: int, step: float, axis: float
    ) -> XrfScan:
        """From the start document's ``xrdct.xrf``: key, elements, calibration, live time."""
        try:
            fitter = XrfFitter(
                [str(e) for e in xrf.get("elements", [])],
                float(xrf["offset_kev"]),
                float(xrf["slope_kev"]),
                int(xrf["channels"]),
            )
        except KeyError as exc:
            raise XrfError(f"the run's xrf metadata has no {exc}") from None
        n_a, n_el, channels = len(angles), len(fitter.elements), fitter.energies.size
        return cls(
            fitter,
            str(xrf["key"]),
            float(xrf.get("live_time", 1.0)),
            str(xrf.get("detector", "")),
            np.zeros((n_a, n_t, channels), dtype=np.int32),
            np.full((n_a, n_t, n_el), np.nan),
            np.zeros((n_a, n_t), dtype=bool),
            IncrementalFBP(angles, n_t, n_el, step, axis=axis),
        )

    def add(self, i: int, j: int, data: dict[str, Any], monitor: float, axis: float) -> None:
        """The spectrum of point (i, j) from its event's ``data``; back-project row ``i``
        once every point of it has come."""
        if self.key not in data:
            self.errors.append(f"point ({i}, {j}): no {self.key} in its event")
            return
        spectrum = np.asarray(data[self.key])
        if spectrum.shape != self.spectra.shape[2:]:
            raise XrfError(
                f"{self.key} at point ({i}, {j}) has shape {spectrum.shape}; the calibration "
                f"says {self.spectra.shape[2]} channels"
            )
        if not np.isfinite(self.monitor_ref) and np.isfinite(monitor) and monitor > 0:
            self.monitor_ref = float(monitor)
        norm = self.monitor_ref / monitor if np.isfinite(monitor) and monitor > 0 else np.nan
        self.spectra[i, j] = spectrum
        self.rates[i, j] = self.fitter.areas(spectrum) / self.live_time * norm
        self.filled[i, j] = True
        if self.filled[i].all() and np.isfinite(self.rates[i]).all():
            self._add(i, self.rates[i], axis)

    def _add(self, i: int, row: np.ndarray, axis: float) -> None:
        if axis != self.fbp.axis:
            self.fbp.set_axis(axis)
        if self.fbp.added[i]:
            self.fbp.replace(i, row)
        else:
            self.fbp.add(i, row)

    def result(self, axis: float) -> XrfResult:
        """Every row in (gaps filled along the translation) at ``axis``: the run's file."""
        rates = fill_missing(self.rates)
        for i in np.flatnonzero(~self.fbp.added):
            self._add(int(i), np.nan_to_num(rates[i]), axis)
        if axis != self.fbp.axis:
            self.fbp.set_axis(axis)
        return XrfResult(
            self.fitter.elements,
            self.fitter.energies,
            self.spectra,
            self.rates,
            ~self.filled,
            self.fbp.result(),
            self.live_time,
            self.detector,
        )
