"""``/entry/maps``: the maps made from a run's reconstruction (#14's file contract).

``/entry/maps/qscreen/<name>`` is an NXdata group per Q-screening window: ``data``
(y, x) with ``@units``, axes ``y`` and ``x`` in mm, and the window's ``q_low``,
``q_high`` and ``background`` as attributes. Voxels outside the reconstruction circle
(which no projection covered at every angle) are NaN, never 0.
"""

from __future__ import annotations

import h5py
import numpy as np

from ...protocols.processing import QWindow


def outside_circle(n: int) -> np.ndarray:
    """The voxels of an n × n slice outside its inscribed circle."""
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    return np.hypot(yy, xx) > n / 2


def write_qscreen(
    entry: h5py.Group, maps: dict[str, tuple[np.ndarray, QWindow]], grid: np.ndarray
) -> None:
    """Write every Q-screening map under ``entry/maps/qscreen``."""
    if not maps:
        return
    top = entry.require_group("maps")
    top.attrs["NX_class"] = "NXcollection"
    group = top.create_group("qscreen")
    group.attrs["NX_class"] = "NXcollection"
    for name, (image, window) in maps.items():
        data = np.asarray(image, dtype=np.float32).copy()
        data[outside_circle(data.shape[0])] = np.nan
        g = group.create_group(name)
        g.attrs.update(NX_class="NXdata", signal="data", axes=["y", "x"], y_indices=0)
        g.attrs.update(x_indices=1, q_low=window.lo, q_high=window.hi)
        g.attrs["background"] = window.background
        ds = g.create_dataset("data", data=data)
        ds.attrs.update(units="counts/mm", long_name=f"{name}: intensity in its q window")
        for axis in ("y", "x"):
            g.create_dataset(axis, data=grid).attrs["units"] = "mm"
