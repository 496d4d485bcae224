"""A projection map's file (seed 004's scanning diffraction with XRF).

``entry`` (default plot ``maps/rgb``):

- ``data``: NXdata of every integrated pattern, (z, x, q), with the monitor;
- ``maps/bragg/<name>``: NXdata (z, x) of each Bragg window's intensity, background
  subtracted, per monitor count, normalised to its brightest point; ``@q_low``,
  ``@q_high``;
- ``maps/rgb``: NXdata (z, x, 3) of the first three as red, green and blue (``@channels``
  names them; a missing one is 0);
- ``maps/xrf/<element>``: NXdata (z, x) of each element's K-family counts per second
  (monitor-normalised), ``@line_energy`` keV;
- ``instrument/fluorescence``: every spectrum (z, x, channel), ``energy``, ``live_time``;
- ``sample/rotation_angle`` (deg) the map was seen at; the cell's V/I log.

Written to ``.part`` and renamed; never over a file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ...materials.xrf_lines import k_alpha
from ...protocols.disk_space import check_space
from .nexus import ElectrochemistryLog, commit, write_electrochemistry


def _map(
    parent: h5py.Group, name: str, data: np.ndarray, zs: np.ndarray, xs: np.ndarray
) -> h5py.Group:
    g = parent.create_group(name)
    g.attrs.update(NX_class="NXdata", signal="data", axes=["z", "x"], z_indices=0, x_indices=1)
    g.create_dataset("data", data=np.asarray(data, dtype=np.float32))
    g.create_dataset("z", data=zs).attrs["units"] = "mm"
    g.create_dataset("x", data=xs).attrs["units"] = "mm"
    return g


def _collection(parent: h5py.Group, name: str) -> h5py.Group:
    g = parent.require_group(name)
    g.attrs["NX_class"] = "NXcollection"
    return g


def write_map(
    path: Path,
    *,
    start_uid: str,
    xs: np.ndarray,
    zs: np.ndarray,
    angle: float,
    q: np.ndarray,
    patterns: np.ndarray,
    monitor: np.ndarray,
    bragg: dict[str, np.ndarray],
    windows: dict[str, tuple[float, float]],
    elements: dict[str, np.ndarray],
    spectra: np.ndarray | None = None,
    energies: np.ndarray | None = None,
    live_time: float = 0.0,
    log: ElectrochemistryLog | None = None,
) -> Path:
    """Write the map (see the module) to ``path``."""
    if path.exists():
        raise FileExistsError(f"map file {path} exists: not written over")
    check_space(path.parent, patterns.nbytes + (spectra.nbytes if spectra is not None else 0),
                f"the map file {path.name}")  # fmt: skip
    tmp = path.with_suffix(".h5.part")
    with h5py.File(tmp, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="maps/rgb", start_uid=start_uid)
        entry["title"] = f"projection map {start_uid[:8]}"
        d = entry.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="data", axes=["z", "x", "q"],
                       z_indices=0, x_indices=1, q_indices=2)  # fmt: skip
        d.create_dataset("data", data=patterns, chunks=True, compression="gzip",
                         compression_opts=1).attrs["units"] = "counts"  # fmt: skip
        d.create_dataset("z", data=zs).attrs["units"] = "mm"
        d.create_dataset("x", data=xs).attrs["units"] = "mm"
        d.create_dataset("q", data=q).attrs["units"] = "1/angstrom"
        d.create_dataset("monitor", data=monitor).attrs["units"] = "counts/s"
        maps = _collection(entry, "maps")
        peaks = _collection(maps, "bragg")
        for name, m in bragg.items():
            g = _map(peaks, name, m, zs, xs)
            g.attrs.update(q_low=windows[name][0], q_high=windows[name][1])
            g["data"].attrs["long_name"] = f"{name} peak intensity, normalised"
        names = list(bragg)[:3]
        rgb = np.zeros((len(zs), len(xs), 3), dtype=np.float32)
        for k, name in enumerate(names):
            rgb[..., k] = np.clip(np.nan_to_num(bragg[name]), 0.0, 1.0)
        g = maps.create_group("rgb")
        g.attrs.update(NX_class="NXdata", signal="data", axes=["z", "x", "."],
                       z_indices=0, x_indices=1, channels=names)  # fmt: skip
        g.create_dataset("data", data=rgb).attrs["long_name"] = "RGB: " + ", ".join(names)
        g.create_dataset("z", data=zs).attrs["units"] = "mm"
        g.create_dataset("x", data=xs).attrs["units"] = "mm"
        if elements:
            xrf = _collection(maps, "xrf")
            for el, m in elements.items():
                g = _map(xrf, el, m, zs, xs)
                g.attrs["line_energy"] = k_alpha(el)
                g["data"].attrs.update(units="counts/s", long_name=f"{el} K fluorescence")
        if spectra is not None and energies is not None:
            inst = entry.create_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            det = inst.create_group("fluorescence")
            det.attrs["NX_class"] = "NXdetector"
            det.create_dataset("data", data=spectra, chunks=True, compression="gzip",
                               compression_opts=1).attrs["units"] = "counts"  # fmt: skip
            det.create_dataset("energy", data=energies).attrs["units"] = "keV"
            det.create_dataset("live_time", data=live_time).attrs["units"] = "s"
        smp = entry.create_group("sample")
        smp.attrs["NX_class"] = "NXsample"
        smp.create_dataset("rotation_angle", data=angle).attrs["units"] = "deg"
        if log is not None:
            write_electrochemistry(entry, log)
    commit(tmp, path)
    return path
