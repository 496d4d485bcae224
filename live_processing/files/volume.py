"""A preset's z planes (one run file each) assembled into one 3-D volume file.

``entry/volume`` (the default plot) is the total diffracted intensity of every voxel,
an NXdata of (z, y, x); ``entry/reconstruction`` is every q bin, (z, y, x, q); every
2-D map the planes hold (``entry/maps/...``: Q-screening and lattice maps) becomes a
3-D NXdata under the same name. The z axis is the stage height each plane was measured
at. A plane whose run did not write its file is NaN and named in
``entry/volume/missing_planes``. The planes' files are listed in ``entry/planes``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

log = logging.getLogger(__name__)


def plane_maps(f: h5py.File) -> dict[str, np.ndarray]:
    """Every 2-D map NXdata under ``entry/maps`` of a run file, by its path there."""
    found: dict[str, np.ndarray] = {}
    maps = f.get("entry/maps")
    if maps is None:
        return found

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and obj.attrs.get("NX_class") == "NXdata":
            data = obj.get("data")
            if isinstance(data, h5py.Dataset) and data.ndim == 2:
                found[name] = data[()]

    maps.visititems(visit)
    return found


def _nxdata(parent: h5py.Group, name: str, data: np.ndarray, axes: list[str]) -> h5py.Group:
    g = parent.require_group(name)
    g.attrs.update(NX_class="NXdata", signal="data", axes=axes)
    for k, axis in enumerate(axes):
        g.attrs[f"{axis}_indices"] = k
    g.create_dataset("data", data=data, chunks=True, compression="gzip", compression_opts=1)
    return g


def write_volume(path: Path, planes: Sequence[tuple[float, Path | None]]) -> Path:
    """Write the volume of ``planes`` (z in mm, its run file or None) to ``path`` (never
    over a file)."""
    present = [(z, p) for z, p in planes if p is not None]
    if not present:
        raise FileNotFoundError(f"volume {path.name}: none of its {len(planes)} planes was written")
    with h5py.File(present[0][1], "r") as f:
        rec = f["entry/reconstruction"]
        q, x, y = rec["q"][()], rec["x"][()], rec["y"][()]
        shape = rec["data"].shape
        map_names = sorted(plane_maps(f))
    nz = len(planes)
    volume = np.full((nz, *shape), np.nan, dtype=np.float32)
    maps = {name: np.full((nz, *shape[:2]), np.nan, dtype=np.float32) for name in map_names}
    missing = []
    for k, (_z, p) in enumerate(planes):
        if p is None:
            missing.append(k)
            continue
        with h5py.File(p, "r") as f:
            volume[k] = f["entry/reconstruction/data"][()]
            for name, image in plane_maps(f).items():
                if name in maps:
                    maps[name][k] = image
    z = np.array([zz for zz, _ in planes], dtype=float)
    with h5py.File(path, "w-") as f:
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="volume")
        total = _nxdata(entry, "volume", np.nansum(volume, axis=-1) * np.float32(q[1] - q[0]),
                        ["z", "y", "x"])  # fmt: skip
        total["data"].attrs.update(units="counts/mm", long_name="diffracted intensity, all q")
        total.create_dataset("missing_planes", data=np.array(missing, dtype=int))
        if missing:  # NaN there, not the 0 a sum of NaNs gives
            total["data"][missing] = np.nan
        full = _nxdata(entry, "reconstruction", volume, ["z", "y", "x", "q"])
        full.create_dataset("q", data=q).attrs["units"] = "1/angstrom"
        for g in (total, full):
            g.create_dataset("z", data=z).attrs["units"] = "mm"
            g.create_dataset("y", data=y).attrs["units"] = "mm"
            g.create_dataset("x", data=x).attrs["units"] = "mm"
        top = entry.create_group("maps")
        top.attrs["NX_class"] = "NXcollection"
        for name, data in maps.items():
            g = _nxdata(top, name, data, ["z", "y", "x"])
            for axis, values in (("z", z), ("y", y), ("x", x)):
                g.create_dataset(axis, data=values).attrs["units"] = "mm"
        names = [p.name if p is not None else "" for _, p in planes]
        entry.create_dataset("planes", data=np.array(names, dtype=h5py.string_dtype()))
    log.info("volume %s: %d planes (%d missing)", path.name, nz, len(missing))
    return path
