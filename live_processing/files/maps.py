"""``/entry/maps``: the maps made from a run's reconstruction (#14's file contract).

``/entry/maps/qscreen/<name>`` is an NXdata group per Q-screening window: ``data``
(y, x) with ``@units``, axes ``y`` and ``x`` in mm, and the window's ``q_low``,
``q_high`` and ``background`` as attributes. ``/entry/maps/<phase>/<map>`` is an NXdata
group per map of a phase (``lattice_a``, ``lattice_a_error``, ``intensity``, ``fwhm``,
``rwp``), laid out the same way, and ``lattice_a_histogram`` (the slice's lattice
parameters: ``counts`` over bin centres ``lattice_a`` in Å).
``/entry/maps/profiles/<phase>`` is an NXdata group of that phase's particles by depth
below their surface: ``lattice_a`` (mean per depth bin) with ``lattice_a_sd``,
``count`` and ``fraction_<phase>`` (each phase's share of the intensity in that shell)
over the axis ``depth`` in mm. Voxels outside the reconstruction circle (which no
projection covered at every angle), and voxels without the phase, are NaN, never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import h5py
import numpy as np

from ...protocols.processing import QWindow
from ..analysis.lattice import histogram

if TYPE_CHECKING:
    from ..analysis.profiles import RadialProfile


def outside_circle(n: int) -> np.ndarray:
    """The voxels of an n × n slice outside its inscribed circle."""
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    return np.hypot(yy, xx) > n / 2


def map_collection(entry: h5py.Group, name: str) -> h5py.Group:
    """A new NXcollection ``entry/maps/<name>`` (``entry/maps`` made if need be)."""
    top = entry.require_group("maps")
    top.attrs["NX_class"] = "NXcollection"
    group = top.create_group(name)
    group.attrs["NX_class"] = "NXcollection"
    return group


def write_slice_map(
    group: h5py.Group,
    name: str,
    image: np.ndarray,
    grid: np.ndarray,
    units: str,
    long_name: str,
    dtype: type = np.float32,
) -> h5py.Group:
    """``group/<name>``: NXdata of a (y, x) slice map, axes ``y``, ``x`` in mm, NaN
    outside the reconstruction circle."""
    data: np.ndarray = np.asarray(image, dtype=dtype).copy()
    data[outside_circle(data.shape[0])] = np.nan
    g = group.create_group(name)
    g.attrs.update(NX_class="NXdata", signal="data", axes=["y", "x"], y_indices=0, x_indices=1)
    g.create_dataset("data", data=data).attrs.update(units=units, long_name=long_name)
    for axis in ("y", "x"):
        g.create_dataset(axis, data=grid).attrs["units"] = "mm"
    return g


def write_qscreen(
    entry: h5py.Group, maps: dict[str, tuple[np.ndarray, QWindow]], grid: np.ndarray
) -> None:
    """Write every Q-screening map under ``entry/maps/qscreen``."""
    if not maps:
        return
    group = map_collection(entry, "qscreen")
    for name, (image, window) in maps.items():
        g = write_slice_map(
            group, name, image, grid, "counts/mm", f"{name}: intensity in its q window"
        )
        g.attrs.update(q_low=window.lo, q_high=window.hi, background=window.background)


PHASE_MAPS = {  # map: (units, long name)
    "lattice_a": ("angstrom", "lattice parameter a"),
    "lattice_a_error": ("angstrom", "standard error of a, with the partial-volume error"),
    "intensity": ("counts/mm/angstrom", "area of the phase's strongest line"),
    "fwhm": ("1/angstrom", "line FWHM, mean over the phase's windows"),
    "rwp": ("1", "Rwp of the voxel's fit"),
}


def write_phase_maps(
    entry: h5py.Group,
    maps: dict[str, dict[str, np.ndarray]],
    grid: np.ndarray,
    fitted: dict[str, object] | None = None,
) -> None:
    """Write each phase's maps under ``entry/maps/<phase>/<map>``; ``fitted``: attributes
    of the fit (phases fitted together, starting FWHM) on every phase group."""
    if not maps:
        return
    for phase, phase_maps in maps.items():
        group = map_collection(entry, phase)
        group.attrs.update(fitted or {})
        for name, image in phase_maps.items():
            units, long_name = PHASE_MAPS.get(name, ("", name))
            write_slice_map(group, name, image, grid, units, f"{phase}: {long_name}", np.float64)
        if "lattice_a" in phase_maps:
            write_histogram(group, phase_maps["lattice_a"])


def write_histogram(group: h5py.Group, lattice_a: np.ndarray, bins: int = 40) -> None:
    """The slice's lattice parameters as a histogram: ``lattice_a_histogram`` (NXdata,
    ``counts`` over the bin centres ``lattice_a`` in Å; ``bin_edges`` beside)."""
    counts, edges = histogram(np.asarray(lattice_a, dtype=float), bins)
    g = group.create_group("lattice_a_histogram")
    g.attrs.update(NX_class="NXdata", signal="counts", axes=["lattice_a"], lattice_a_indices=0)
    g.create_dataset("counts", data=counts).attrs["units"] = "voxels"
    centres = 0.5 * (edges[1:] + edges[:-1])
    g.create_dataset("lattice_a", data=centres).attrs["units"] = "angstrom"
    g.create_dataset("bin_edges", data=edges).attrs["units"] = "angstrom"


def write_profiles(entry: h5py.Group, profiles: dict[str, RadialProfile]) -> None:
    """Write each phase's radial profiles under ``entry/maps/profiles/<phase>``."""
    if not profiles:
        return
    group = map_collection(entry, "profiles")
    for phase, prof in profiles.items():
        g = group.create_group(phase)
        g.attrs.update(NX_class="NXdata", signal="lattice_a", axes=["depth"], depth_indices=0)
        g.attrs["particles"] = prof.particles
        g.create_dataset("depth", data=prof.lattice_a.depth).attrs.update(
            units="mm", long_name="depth below the particle's surface (bin centre)"
        )
        g.create_dataset("lattice_a", data=prof.lattice_a.mean).attrs.update(
            units="angstrom", long_name=f"{phase}: mean lattice parameter per depth bin"
        )
        g.create_dataset("lattice_a_sd", data=prof.lattice_a.sd).attrs["units"] = "angstrom"
        g.create_dataset("count", data=prof.lattice_a.count).attrs["units"] = "voxels"
        for other, share in prof.fractions.items():
            g.create_dataset(f"fraction_{other}", data=share).attrs.update(
                units="1", long_name=f"{other}'s share of the intensity per depth shell"
            )
