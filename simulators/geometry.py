"""The simulated diffraction detector and its geometry at each detector distance.

The detector rides on a distance motor (``P dist``, mm from the sample): WAXS at
``WAXS_DISTANCE``, SAXS at ``SAXS_DISTANCE`` behind a flight tube (seed ``003``: ≈ 6 m).
Its PONI at a distance differs only in ``dist``. A beamstop of ``BEAMSTOP_RADIUS``
shadows the direct beam at every distance.
"""

from __future__ import annotations

from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

WAVELENGTH = 0.2480e-10  # m, 50 keV (seed 001)
POLARIZATION = 0.99
WAXS_DISTANCE = 1.0  # m
SAXS_DISTANCE = 6.0  # m
BEAMSTOP_RADIUS = 3.0e-3  # m on the detector


def simulated_detector(binning: int = 4) -> Detector:
    """A Pilatus3 X CdTe 2M (1679 × 1475, 172 µm) read out binned ``binning``×``binning``."""
    shape = (1679 // binning, 1475 // binning)
    det = Detector(pixel1=172e-6 * binning, pixel2=172e-6 * binning, max_shape=shape)
    return det


def default_integrator(binning: int = 4, distance: float = WAXS_DISTANCE) -> AzimuthalIntegrator:
    """The simulated beamline's geometry: beam at the detector centre, small tilt;
    ``distance`` in m (the distance motor's position)."""
    det = simulated_detector(binning)
    ny, nx = det.max_shape
    return AzimuthalIntegrator(
        dist=distance,
        poni1=ny / 2 * det.pixel1,
        poni2=nx / 2 * det.pixel2,
        rot1=0.002,
        rot2=-0.001,
        rot3=0.0,
        detector=det,
        wavelength=WAVELENGTH,
    )
