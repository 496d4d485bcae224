"""Full-field absorption tomography: flat/dark correction, −log, FBP slice by slice.

A camera frame (rows = heights, columns = lateral positions) is one projection of every
slice at once. :class:`AbsorptionVolume` averages the darks and flats it is given, turns
each projection into ``-ln((P - D) / (F - D))`` and feeds it, columns reversed into
increasing translation (a column at lateral ``s`` sees the sample as the pencil beam
does at translation ``-s``), to the same :class:`.incremental_fbp.IncrementalFBP` as
XRD-CT, with the camera's rows as its channels: every slice grows with every
projection. :meth:`final` is ASTRA's FBP of the finished sinogram
(:func:`.reconstruct.fbp_stack`: CUDA when a GPU is there, else CPU), normalised with
every flat, the ones after the projections too. Values are μ in 1/mm.

Projections before the first flat cannot be normalised: they wait, and go in when it
comes. Both FBPs scale by π over the number of angles, which holds for 180° and 360°
alike (``tests/test_absorption.py`` checks the values against the phantom's μ).
"""

from __future__ import annotations

import numpy as np

from .incremental_fbp import IncrementalFBP
from .reconstruct import fbp_stack

MIN_SIGNAL = 1.0  # counts above the dark: less is no beam (the log would blow up)


class AbsorptionVolume:
    """A growing absorption volume (rows, n, n) of a full-field scan."""

    def __init__(self, angles_deg: np.ndarray, shape: tuple[int, int], pixel_mm: float) -> None:
        self.angles = np.asarray(angles_deg, dtype=float)
        self.rows, self.cols = shape
        self.pixel = pixel_mm
        self.fbp = IncrementalFBP(self.angles, self.cols, self.rows, step_mm=pixel_mm)
        self._dark_sum, self._n_dark = np.zeros(shape), 0
        self._flat_sum, self._n_flat = np.zeros(shape), 0
        self._waiting: list[tuple[int, np.ndarray]] = []
        self.raw = np.full((len(self.angles), *shape), np.nan, dtype=np.float32)

    @property
    def dark(self) -> np.ndarray:
        return self._dark_sum / max(self._n_dark, 1)

    @property
    def flat(self) -> np.ndarray:
        return self._flat_sum / self._n_flat

    def add_dark(self, frame: np.ndarray) -> None:
        self._dark_sum += frame
        self._n_dark += 1

    def add_flat(self, frame: np.ndarray) -> None:
        self._flat_sum += frame
        self._n_flat += 1
        waiting, self._waiting = self._waiting, []
        for index, raw in waiting:
            self.add_projection(index, raw)

    def line_integrals(self, frame: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """(rows, cols) ``-ln((P - D)/(F - D))`` of one frame."""
        dark = self.dark
        signal = np.maximum(frame - dark, MIN_SIGNAL)
        return -np.log(signal / np.maximum(flat - dark, MIN_SIGNAL))

    def add_projection(self, index: int, frame: np.ndarray) -> None:
        """Projection ``index`` (its angle's position): into every slice now, or once a
        flat is in."""
        frame = np.asarray(frame, dtype=float)
        self.raw[index] = frame
        if not self._n_flat:
            self._waiting.append((index, frame))
            return
        lines = self.line_integrals(frame, self.flat)
        self.fbp.add(index, np.ascontiguousarray(lines.T[::-1]))

    def volume(self) -> np.ndarray:
        """The slices so far, (rows, n, n), μ in 1/mm."""
        self.fbp.flush()
        return np.moveaxis(self.fbp.volume, 2, 0)

    def final(self) -> np.ndarray:
        """ASTRA's FBP of the whole sinogram with every flat, (rows, n, n), μ in 1/mm."""
        if not self._n_flat:
            raise ValueError("absorption tomography: no flat field, nothing to normalise by")
        flat = self.flat
        done = np.isfinite(self.raw[:, 0, 0])
        sino = np.stack([self.line_integrals(p, flat).T[::-1] for p in self.raw[done]])
        return np.moveaxis(fbp_stack(sino, self.angles[done], self.pixel), 2, 0)
