"""The diffraction detector on its distance motor: one renderer per distance.

The detector renders frames in the geometry of where the distance motor stands when a
series is armed (a frame's geometry never changes within a series). Each distance's
renderer is built the first time a series is armed there (seconds, in the IOC), and
kept; a sample change starts afresh.
"""

from __future__ import annotations

from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from .render import FrameRenderer

TOLERANCE = 1.0  # mm: distances this close render with one geometry


def at_distance(ai: AzimuthalIntegrator, distance_m: float) -> AzimuthalIntegrator:
    """``ai``'s geometry with the detector moved along the beam to ``distance_m``."""
    return AzimuthalIntegrator(
        dist=distance_m, poni1=ai.poni1, poni2=ai.poni2, rot1=ai.rot1, rot2=ai.rot2,
        rot3=ai.rot3, detector=ai.detector, wavelength=ai.wavelength,
    )  # fmt: skip


class Renderers:
    """The renderers of one sample, by detector distance (mm)."""

    def __init__(self, first: FrameRenderer) -> None:
        self.first = first
        self._by_mm: dict[float, FrameRenderer] = {first.integrator.dist * 1000.0: first}

    def at(self, distance_mm: float) -> FrameRenderer:
        """The renderer at ``distance_mm``, built now if there is none yet."""
        for mm, renderer in self._by_mm.items():
            if abs(mm - distance_mm) <= TOLERANCE:
                return renderer
        base = self.first
        renderer = FrameRenderer(
            base.phantom, at_distance(base.integrator, distance_mm / 1000.0),
            artefacts=base.artefacts,
        )  # fmt: skip
        self._by_mm[distance_mm] = renderer
        return renderer
