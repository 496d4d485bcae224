"""Reading what the page shows from a run's file: the live SWMR file while it runs, the
final NeXus file after. Both hold ``/entry/reconstruction`` and ``/entry/sinogram``
with q last, so one slice at one q is one small read.

The web server reads from several threads; HDF5 shares one open file among the handles
of a process, so every read here holds :data:`FILE_LOCK` from open to close (a pattern
read while another thread's handle of the same file closed came back wrong).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...materials.phases import LIBRARY

REGION_VALUES = 2_000_000  # values read at most for the page's first pattern


class NotReadyError(LookupError):
    """The file has no such data (yet): the caller answers 404 and the page waits."""


FILE_LOCK = threading.Lock()


@contextmanager
def _open(path: Path, live: bool) -> Iterator[h5py.File]:
    with FILE_LOCK:
        try:
            if live:
                f = h5py.File(path, "r", libver="latest", swmr=True)
            else:
                f = h5py.File(path, "r")
        except OSError as exc:  # being created, or removed as the final file took over
            raise NotReadyError(f"{path.name} cannot be read now: {exc}") from None
        with f:
            yield f


def _group(f: h5py.File, name: str) -> h5py.Group:
    g = f.get(f"entry/{name}")
    if not isinstance(g, h5py.Group) or "data" not in g:
        raise NotReadyError(f"{f.filename} has no /entry/{name}")
    return g


def _check_q(ds: h5py.Dataset, iq: int) -> None:
    if not 0 <= iq < ds.shape[-1]:
        raise ValueError(f"q index {iq} is outside 0..{ds.shape[-1] - 1}")


def axes(path: Path, live: bool) -> dict[str, Any]:
    """The axes of the slice and sinogram, a default q index (the summed pattern's
    strongest bin) and the library's reflections inside the q range."""
    with _open(path, live) as f:
        rec = _group(f, "reconstruction")
        q = rec["q"][()]
        out: dict[str, Any] = {"q": q.tolist(), "x": rec["x"][()].tolist()}
        out["y"] = rec["y"][()].tolist()
        data = rec["data"]
        if live:
            data.refresh()
        ny, nx = data.shape[:2]
        out["region"] = default_region(ny, nx, q.size)
        middle = data[ny // 2]  # one row across the slice: cheap, and where the sample is
        total = np.nansum(middle, axis=0)
        out["default_q"] = int(np.argmax(total)) if np.any(total > 0) else q.size // 2
        if "sinogram" in f["entry"]:
            s = f["entry/sinogram"]
            out["angle"] = s["angle"][()].tolist()
            out["translation"] = s["translation"][()].tolist()
        out["maps"] = _maps_in(f)
    out["reflections"] = reflections(float(q[0]), float(q[-1]))
    return out


def _maps_in(f: h5py.File) -> list[dict[str, str]]:
    """The 2-D maps under ``/entry/maps`` (``<group>/<map>``: a phase's lattice maps, the
    Q-screening maps), each with its units."""
    out: list[dict[str, str]] = []
    top = f.get("entry/maps")
    if not isinstance(top, h5py.Group):
        return out
    for group_name, group in top.items():
        if not isinstance(group, h5py.Group) or group_name == "profiles":
            continue
        for name, m in group.items():
            ds = m.get("data") if isinstance(m, h5py.Group) else None
            if isinstance(ds, h5py.Dataset) and ds.ndim == 2:
                units = ds.attrs.get("units", "")
                out.append({"name": f"{group_name}/{name}", "units": str(units)})
    return out


def map_at(path: Path, live: bool, name: str) -> tuple[np.ndarray, str]:
    """The map ``<group>/<map>`` (as :func:`axes` lists them): (ny, nx) float32 and its
    units."""
    group, _, leaf = name.partition("/")
    if not group or not leaf or "/" in leaf or group == "profiles":
        raise ValueError(f"map {name!r} is not of the form <group>/<map>")
    with _open(path, live) as f:
        m = f.get(f"entry/maps/{group}/{leaf}")
        ds = m.get("data") if isinstance(m, h5py.Group) else None
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
            raise NotReadyError(f"{path.name} has no map {name!r} (yet)")
        if live:
            ds.refresh()
        return np.ascontiguousarray(ds[()], dtype=np.float32), str(ds.attrs.get("units", ""))


def default_region(ny: int, nx: int, n_q: int) -> list[int]:
    """The region whose pattern the page shows first, as [r0, r1, c0, c1]: the whole
    slice, or where that is more than :data:`REGION_VALUES` values to read on every
    update, the central square that is not."""
    if ny * nx * n_q <= REGION_VALUES:
        return [0, ny - 1, 0, nx - 1]
    side = max(1, int(math.sqrt(REGION_VALUES / n_q)))
    r0, c0 = max(0, (ny - side) // 2), max(0, (nx - side) // 2)
    return [r0, min(ny, r0 + side) - 1, c0, min(nx, c0 + side) - 1]


def warm_up() -> None:
    """Work out every library phase's lines now (a second of CPU, once per process),
    not on a page's first look while a scan streams."""
    for phase in LIBRARY.values():
        if phase.crystalline:
            phase.line_positions()


def reflections(q_lo: float, q_hi: float) -> dict[str, list[float]]:
    """Each crystalline library phase's line positions (1/Å) at its a0 inside the range."""
    out = {}
    for name, phase in LIBRARY.items():
        if phase.crystalline:
            q = phase.line_positions()
            out[name] = [float(v) for v in q[(q >= q_lo) & (q <= q_hi)]]
    return out


def slice_at(path: Path, live: bool, iq: int) -> tuple[np.ndarray, int]:
    """The reconstruction at q index ``iq``, (ny, nx) float32, and how many projections
    it holds (the live file's count; a final file's every angle)."""
    with _open(path, live) as f:
        rec = _group(f, "reconstruction")
        ds = rec["data"]
        if live:
            ds.refresh()
            rec["n_projections"].refresh()
        _check_q(ds, iq)
        image = np.ascontiguousarray(ds[:, :, iq], dtype=np.float32)
        if "n_projections" in rec:
            return image, int(rec["n_projections"][()])
        angles = f.get("entry/sinogram/angle")
        return image, int(angles.shape[0]) if angles is not None else 0


def sinogram_at(path: Path, live: bool, iq: int) -> np.ndarray:
    """The sinogram at q index ``iq``: (n_angles, n_translations) float32, NaN where no
    frame came yet."""
    with _open(path, live) as f:
        ds = _group(f, "sinogram")["data"]
        if live:
            ds.refresh()
        _check_q(ds, iq)
        return np.ascontiguousarray(ds[:, :, iq], dtype=np.float32)


def pattern(path: Path, live: bool, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """The mean pattern of the voxels ``rows[0]..rows[1]`` × ``cols[0]..cols[1]``
    (inclusive, clipped to the slice): (n_q,)."""
    with _open(path, live) as f:
        ds = _group(f, "reconstruction")["data"]
        if live:
            ds.refresh()
        ny, nx = ds.shape[:2]
        r0, r1 = sorted(rows)
        c0, c1 = sorted(cols)
        r0, r1 = max(0, r0), min(ny - 1, r1)
        c0, c1 = max(0, c0), min(nx - 1, c1)
        if r0 > r1 or c0 > c1:
            raise ValueError(
                f"the region rows {rows}, columns {cols} is outside the {ny} x {nx} slice"
            )
        block = ds[r0 : r1 + 1, c0 : c1 + 1, :]
        return np.nanmean(block.reshape(-1, block.shape[-1]), axis=0).astype(np.float32)


def encode(image: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An image as little-endian float32 bytes, and the headers that give its shape."""
    arr = np.ascontiguousarray(image, dtype="<f4")
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
    return arr.tobytes(), {
        "X-Shape": ",".join(str(n) for n in arr.shape),
        "X-Range": f"{lo},{hi}",
        "Cache-Control": "no-store",
    }
