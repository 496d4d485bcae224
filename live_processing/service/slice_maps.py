"""The maps of a finished XRD-CT slice: Q-screening, lattice parameters, SAXS.

Maps that cannot be made (a window or phase the run's q range does not reach, a SAXS
profile too short, any failure of the fits) are reported and left out: the run's file
is written without them, never lost for them.
"""

from __future__ import annotations

import logging

import numpy as np

from ...protocols.processing import ProcessingSettings, QWindow
from ...protocols.streams import Report
from ..analysis.lattice import LatticeError, lattice_maps
from ..analysis.profiles import RadialProfile, radial_profiles
from ..analysis.qscreen import window_intensity, windows_for
from ..analysis.saxs import SaxsError
from ..files.saxs import SaxsMaps
from .run_state import RunState
from .runs import Reporter

log = logging.getLogger(__name__)


def qscreen_maps(
    run: RunState, recon: np.ndarray, settings: ProcessingSettings, report: Reporter
) -> dict[str, tuple[np.ndarray, QWindow]]:
    """The settings' Q-screening maps of the final volume."""
    maps = {}
    for window in windows_for(settings.qscreen):
        try:
            maps[window.name] = (window_intensity(recon, run.integrator.q, window), window)
        except ValueError as exc:
            report(event=Report.ERROR, run=run.uid, source="qscreen", error=str(exc))
    return maps


def saxs_maps(run: RunState, recon: np.ndarray, report: Reporter) -> SaxsMaps | None:
    """A SAXS-CT run's d* and intensity maps (None for any other run)."""
    if run.geometry.technique != "saxs":
        return None
    try:
        return SaxsMaps.of(recon, run.integrator.q)
    except SaxsError as exc:
        error = str(exc)
    except Exception as exc:  # a fault in the maps must not cost the run its file
        log.exception("run %s: SAXS maps failed", run.uid)
        error = f"SAXS maps failed ({type(exc).__name__}: {exc}); the file has none"
    report(event=Report.ERROR, run=run.uid, source="saxs", error=error)
    return None


def lattice_maps_of(
    run: RunState, recon: np.ndarray, settings: ProcessingSettings, report: Reporter
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, RadialProfile]]:
    """The settings' lattice-parameter maps of the final volume and their radial profiles."""
    if not settings.lattice:
        return {}, {}
    try:
        maps = lattice_maps(recon, run.integrator.q, settings.lattice, settings.line_fwhm)
        t = np.asarray(run.geometry.translations, dtype=float)
        pixel = float(abs(t[1] - t[0])) if t.size > 1 else 1.0  # one voxel per step
        return maps, radial_profiles(maps, pixel)
    except LatticeError as exc:
        error = str(exc)
    except Exception as exc:  # a fault in the maps must not cost the run its file
        log.exception("run %s: lattice maps failed", run.uid)
        error = f"lattice maps failed ({type(exc).__name__}: {exc}); the file has none"
    report(event=Report.ERROR, run=run.uid, source="lattice", error=error)
    return {}, {}
