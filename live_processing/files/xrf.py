"""A run's fluorescence in its file.

- ``/entry/maps/xrf/<element>``: NXdata of the XRF-CT slice of each element, ``data``
  (y, x) per mm of path (counts/s at the run's first monitor reading), axes ``y``, ``x``
  in mm, laid out as the other maps (:mod:`.maps`); voxels outside the reconstruction
  circle NaN. ``@line_energy`` is the element's strongest K line (keV).
- ``/entry/instrument/fluorescence``: NXdetector with every spectrum, ``data``
  (angle, translation, channel) counts, ``energy`` (keV per channel), ``live_time``
  (s), ``elements``, ``element_rates`` (angle, translation, element: the fitted K-family
  counts per second, monitor-normalised: the XRF sinograms) and ``missing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import h5py
import numpy as np

from ...materials.xrf_lines import k_alpha
from .maps import map_collection, write_slice_map

if TYPE_CHECKING:
    from ..service.xrf_run import XrfResult


def write_xrf(entry: h5py.Group, xrf: XrfResult, grid: np.ndarray) -> None:
    """The element slices under ``entry/maps/xrf`` and the spectra under the instrument."""
    maps = map_collection(entry, "xrf")
    for k, element in enumerate(xrf.elements):
        g = write_slice_map(
            maps, element, xrf.slices[..., k], grid, "counts/s/mm",
            f"{element} K fluorescence per mm",
        )  # fmt: skip
        g.attrs.update(element=element, line_energy=k_alpha(element))
    inst = entry.require_group("instrument")
    inst.attrs["NX_class"] = "NXinstrument"
    det = inst.create_group("fluorescence")
    det.attrs["NX_class"] = "NXdetector"
    det.create_dataset("name", data=xrf.detector)
    det.create_dataset(
        "data", data=xrf.spectra, chunks=True, compression="gzip", compression_opts=1
    ).attrs["units"] = "counts"
    det.create_dataset("energy", data=xrf.energies).attrs["units"] = "keV"
    det.create_dataset("live_time", data=xrf.live_time).attrs["units"] = "s"
    det.create_dataset("elements", data=xrf.elements)
    rates = det.create_dataset("element_rates", data=xrf.rates)
    rates.attrs.update(units="counts/s", long_name="K-family counts, monitor-normalised")
    det.create_dataset("missing", data=xrf.missing)
