"""A full-field scan's file, NXtomo: every frame with its ``image_key``, and the volume.

``entry`` (``definition`` NXtomo): ``instrument/detector`` holds ``data`` (n, rows,
columns; counts), ``image_key`` (0 projection, 1 flat, 2 dark), the pixel sizes;
``sample/rotation_angle`` (degrees, per frame) and ``sample/x_translation`` (mm, per
frame: the flats' sample out of the beam); ``data`` (NXdata) links them. The
reconstruction is ``entry/reconstruction`` (NXdata, μ in 1/mm, (z, y, x): one slice per
camera row), the entry's default plot. Never written over a file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .nexus import ElectrochemistryLog, write_electrochemistry


def write_nxtomo(
    path: Path,
    *,
    start_uid: str,
    frames: np.ndarray,
    image_key: np.ndarray,
    angles: np.ndarray,
    x: np.ndarray,
    pixel_mm: float,
    volume: np.ndarray,
    energy_kev: float | None = None,
    log: ElectrochemistryLog | None = None,
) -> Path:
    """Write the scan (see the module) to ``path``; the volume is (rows, n, n); with
    ``log``, the cell's V/I and protocol transitions as in an XRD-CT file."""
    with h5py.File(path, "w-") as f:
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="reconstruction")
        entry["definition"] = "NXtomo"
        entry["title"] = f"full-field tomography {start_uid[:8]}"
        entry["start_uid"] = start_uid
        inst = entry.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        det = inst.create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        data = det.create_dataset(
            "data", data=frames, chunks=(1, *frames.shape[1:]), compression="gzip",
            compression_opts=1,
        )  # fmt: skip
        data.attrs["units"] = "counts"
        det["image_key"] = np.asarray(image_key, dtype=np.int32)
        for name in ("x_pixel_size", "y_pixel_size"):
            det[name] = pixel_mm * 1e-3
            det[name].attrs["units"] = "m"
        if energy_kev is not None:
            source = inst.create_group("source")
            source.attrs["NX_class"] = "NXsource"
            source["energy"] = energy_kev
            source["energy"].attrs["units"] = "keV"
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        sample["rotation_angle"] = np.asarray(angles, dtype=float)
        sample["rotation_angle"].attrs["units"] = "degree"
        sample["x_translation"] = np.asarray(x, dtype=float)
        sample["x_translation"].attrs["units"] = "mm"
        nxdata = entry.create_group("data")
        nxdata.attrs.update(NX_class="NXdata", signal="data")
        nxdata["data"] = det["data"]
        nxdata["image_key"] = det["image_key"]
        nxdata["rotation_angle"] = sample["rotation_angle"]
        rec = entry.create_group("reconstruction")
        rec.attrs.update(NX_class="NXdata", signal="data", axes=["z", "y", "x"])
        rec.attrs.update(z_indices=0, y_indices=1, x_indices=2)
        ds = rec.create_dataset("data", data=volume.astype(np.float32), chunks=True,
                                compression="gzip", compression_opts=1)  # fmt: skip
        ds.attrs.update(units="1/mm", long_name="linear attenuation coefficient")
        rows, n = volume.shape[0], volume.shape[1]
        rec["z"] = (np.arange(rows) - (rows - 1) / 2) * pixel_mm
        rec["y"] = ((n - 1) / 2 - np.arange(n)) * pixel_mm  # row 0 at the top (+y)
        rec["x"] = (np.arange(n) - (n - 1) / 2) * pixel_mm
        for axis in ("z", "y", "x"):
            rec[axis].attrs["units"] = "mm"
        if log is not None:
            write_electrochemistry(entry, log)
    return path
