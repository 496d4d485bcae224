"""Element line areas of XRF spectra: a linear fit of K-line families and a background.

Each named element contributes its K lines (energies and shares from xraydb) as
Gaussians of the detector's Fano-limited width (:mod:`operando.materials.xrf_lines`);
a low-order polynomial takes the continuum. Over the fitted energy range the model is
linear in its amplitudes, so one pseudo-inverse, made once per calibration, fits every
spectrum of a scan at once: an element's area is the counts of its whole K family.
"""

from __future__ import annotations

import numpy as np

from ...materials.xrf_lines import XrfError, family_shape, fwhm_kev, lines_within

BACKGROUND_TERMS = 2  # polynomial terms of the continuum (a line over each range)
MARGIN_FWHM = 4.0  # the fit reaches this many line widths beyond the outer lines


class XrfFitter:
    """Fits ``elements``' K families to spectra on channels ``offset + k × slope`` keV.

    Elements whose fitting ranges (their lines ± :data:`MARGIN_FWHM` widths) overlap are
    fitted together, each group over its own range with its own continuum: a strong
    element's lines far away never feed a weak one's noise through a shared background.
    """

    def __init__(
        self, elements: list[str], offset_kev: float, slope_kev: float, channels: int
    ) -> None:
        if not elements:
            raise XrfError("no elements to fit: name at least one (e.g. Mn)")
        if not (slope_kev > 0 and channels > 1):
            raise XrfError(
                f"SDD calibration slope {slope_kev} keV/channel over {channels} channels: "
                "need a slope > 0 and at least 2 channels"
            )
        self.elements = list(elements)
        self.energies = offset_kev + slope_kev * np.arange(channels)
        ranges = {el: self._range(el) for el in self.elements}
        # (channels of the range, indices of its elements, pseudo-inverse of its model)
        self.groups: list[tuple[np.ndarray, list[int], np.ndarray]] = []
        for members in _overlapping(ranges):
            lo = min(ranges[el][0] for el in members)
            hi = max(ranges[el][1] for el in members)
            window = np.flatnonzero((self.energies >= lo) & (self.energies <= hi))
            e = self.energies[window]
            t = (e - e.mean()) / max(float(np.ptp(e)), 1e-9)
            columns = [family_shape(el, e) for el in members]
            columns += [t**k for k in range(BACKGROUND_TERMS)]
            pinv = np.linalg.pinv(np.stack(columns, axis=1))
            self.groups.append((window, [self.elements.index(el) for el in members], pinv))

    def _range(self, element: str) -> tuple[float, float]:
        """The energies (keV) an element's fit covers: its lines ± a few widths."""
        lines = lines_within(element, float(self.energies[0]), float(self.energies[-1]))
        lo = min(line.energy_kev for line in lines)
        hi = max(line.energy_kev for line in lines)
        return lo - MARGIN_FWHM * float(fwhm_kev(lo)), hi + MARGIN_FWHM * float(fwhm_kev(hi))

    def areas(self, spectra: np.ndarray) -> np.ndarray:
        """Counts of each element's K family in each spectrum (..., channels) →
        (..., elements)."""
        s = np.asarray(spectra, dtype=float)
        if s.shape[-1] != self.energies.size:
            raise XrfError(
                f"spectra of {s.shape[-1]} channels; the calibration has {self.energies.size}"
            )
        out = np.zeros((*s.shape[:-1], len(self.elements)))
        for window, members, pinv in self.groups:
            coef = s[..., window] @ pinv.T
            out[..., members] = coef[..., : len(members)]
        return out


def _overlapping(ranges: dict[str, tuple[float, float]]) -> list[list[str]]:
    """The elements in groups whose ranges overlap (sorted by energy)."""
    groups: list[list[str]] = []
    end = -np.inf
    for el, (lo, hi) in sorted(ranges.items(), key=lambda kv: kv[1][0]):
        if groups and lo <= end:
            groups[-1].append(el)
            end = max(end, hi)
        else:
            groups.append([el])
            end = hi
    return groups
