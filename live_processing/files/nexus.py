"""One NeXus/HDF5 file per XRD-CT run (the layout other tools rely on).

``/entry`` (NXentry, ``@start_uid``): ``sinogram`` and ``reconstruction`` (NXdata),
``electrochemistry`` (NXlog: time relative to ``time@start``, voltage, current, scan
start/end times), ``ground_truth`` (simulated runs: the phantom on the slice grid),
``instrument`` (PONI geometry and detector name), ``protocol`` (NXcollection: every
transition of the operando protocol: time, state, reason, n, voltage, current),
``sample`` (simulated runs: the cell's lithium content during the scan).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ...protocols.disk_space import check_space
from ...protocols.processing import QWindow
from .maps import write_phase_maps, write_profiles, write_qscreen
from .saxs import SaxsMaps, write_saxs
from .xrf import write_xrf

if TYPE_CHECKING:
    from ..analysis.profiles import RadialProfile
    from ..service.xrf_run import XrfResult
    from ..tomography.sliding import WindowSlice

HC_KEV_ANGSTROM = 12.398419843320026  # h·c in keV·Å (CODATA 2018)


@dataclass
class ElectrochemistryLog:
    """The V/I record of an experiment and the times of its scans (epoch seconds)."""

    time: list[float] = field(default_factory=list)
    voltage: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    cell_time: list[float] = field(default_factory=list)
    scan_start: list[float] = field(default_factory=list)
    scan_end: list[float] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)

    def add(self, t: float, v: float, i: float, ct: float) -> None:
        self.time.append(t)
        self.voltage.append(v)
        self.current.append(i)
        self.cell_time.append(ct)


def _nxdata(
    parent: h5py.Group, name: str, signal: np.ndarray, axes: list[tuple[str, np.ndarray, str]]
) -> h5py.Group:
    g = parent.create_group(name)
    g.attrs["NX_class"] = "NXdata"
    g.attrs["signal"] = "data"
    g.attrs["axes"] = [a[0] for a in axes]
    g.create_dataset("data", data=signal, chunks=True, compression="gzip", compression_opts=1)
    for k, (axis, values, units) in enumerate(axes):
        ds = g.create_dataset(axis, data=values)
        ds.attrs["units"] = units
        g.attrs[f"{axis}_indices"] = k
    return g


def write_electrochemistry(entry: h5py.Group, log: ElectrochemistryLog) -> None:
    """(Re)write ``entry/electrochemistry`` from ``log``."""
    if "electrochemistry" in entry:
        del entry["electrochemistry"]
    g = entry.create_group("electrochemistry")
    g.attrs["NX_class"] = "NXlog"
    t0 = min([*log.time, *log.scan_start] or [0.0])
    start = dt.datetime.fromtimestamp(t0, tz=dt.UTC).isoformat()
    order = np.argsort(log.time, kind="stable")

    def rel(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=float) - t0

    t = g.create_dataset("time", data=rel(log.time)[order])
    t.attrs.update(units="s", start=start)
    g.create_dataset("voltage", data=np.asarray(log.voltage, dtype=float)[order]).attrs["units"] = (
        "V"
    )
    g.create_dataset("current", data=np.asarray(log.current, dtype=float)[order]).attrs["units"] = (
        "A"
    )
    g.create_dataset("cell_time", data=np.asarray(log.cell_time, dtype=float)[order]).attrs[
        "units"
    ] = "s"
    g["value"] = g["voltage"]
    for key in ("scan_start", "scan_end"):
        ds = g.create_dataset(key, data=rel(getattr(log, key)))
        ds.attrs.update(units="s", start=start)
    write_vi_plot(entry, g)
    write_transitions(entry, log.transitions, t0, start)


def write_vi_plot(entry: h5py.Group, log: h5py.Group) -> None:
    """``entry/potentiostat`` (NXdata): V and I against time, links to the NXlog's data."""
    if "potentiostat" in entry:
        del entry["potentiostat"]
    g = entry.create_group("potentiostat")
    g.attrs.update(
        NX_class="NXdata", signal="voltage", auxiliary_signals=["current"], axes=["time"]
    )
    g.attrs["time_indices"] = 0
    for key in ("time", "voltage", "current"):
        g[key] = log[key]


TRANSITION_FIELDS = ("state", "reason", "n", "voltage", "current")


def write_transitions(entry: h5py.Group, rows: list[dict[str, Any]], t0: float, start: str) -> None:
    """(Re)write ``entry/protocol``: one row per protocol transition, in time order."""
    if "protocol" in entry:
        del entry["protocol"]
    g = entry.create_group("protocol")
    g.attrs["NX_class"] = "NXcollection"
    rows = sorted(rows, key=lambda r: r["time"])
    t = g.create_dataset("time", data=np.array([r["time"] - t0 for r in rows], dtype=float))
    t.attrs.update(units="s", start=start)
    text = h5py.string_dtype()
    for key in ("state", "reason"):
        g.create_dataset(
            key, data=np.array([str(r.get(key, "")) for r in rows], dtype=object), dtype=text
        )
    g.create_dataset("n", data=np.array([int(r.get("n", 0)) for r in rows], dtype=np.int64))
    for key, unit in (("voltage", "V"), ("current", "A")):
        values = np.array([float(r.get(key, np.nan)) for r in rows], dtype=float)
        g.create_dataset(key, data=values).attrs["units"] = unit


def write_run(
    path: Path,
    *,
    start_uid: str,
    angles: np.ndarray,
    translations: np.ndarray,
    q: np.ndarray,
    sinogram: np.ndarray,
    monitor: np.ndarray,
    missing: np.ndarray,
    reconstruction: np.ndarray,
    log: ElectrochemistryLog,
    poni_text: str,
    detector_name: str,
    ground_truth: Path | None,
    metadata: dict[str, Any],
    sample_state: dict[str, Any] | None = None,
    reconstruction_attrs: dict[str, Any] | None = None,
    times: tuple[float, float] | None = None,
    wavelength: float | None = None,
    process: dict[str, dict[str, Any]] | None = None,
    settings_json: str = "",
    window: WindowSlice | None = None,
    qscreen: dict[str, tuple[np.ndarray, QWindow]] | None = None,
    phase_maps: dict[str, dict[str, np.ndarray]] | None = None,
    phase_fit: dict[str, Any] | None = None,
    profiles: dict[str, RadialProfile] | None = None,
    xrf: XrfResult | None = None,
    saxs: SaxsMaps | None = None,
) -> Path:
    """Write a complete run file atomically (to ``.part``, then renamed).

    ``times``: the run's (start, end), epoch s; ``wavelength``: the beam's, Å;
    ``process``: each correction's record (:func:`write_process`); ``settings_json``:
    the processing settings, kept with them; ``window``: an interlaced series'
    sliding-window slice, as ``entry/window`` (its record in ``process``); ``qscreen``:
    the Q-screening maps with their windows (:func:`.maps.write_qscreen`);
    ``phase_maps``: each phase's lattice maps, ``phase_fit`` how they were fitted
    (:func:`.maps.write_phase_maps`); ``profiles``: their radial profiles
    (:func:`.maps.write_profiles`); ``xrf``: the fluorescence (:func:`.xrf.write_xrf`);
    ``saxs``: a SAXS-CT run's maps (:func:`.saxs.write_saxs`).
    """
    tmp = path.with_suffix(".h5.part")
    arrays = (sinogram, reconstruction, monitor, missing, angles, translations, q)
    check_space(path.parent, sum(np.asarray(a).nbytes for a in arrays), f"the run file {path.name}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["default"] = "entry"
            entry = f.create_group("entry")
            entry.attrs.update(NX_class="NXentry", start_uid=start_uid, default="reconstruction")
            entry.create_dataset(
                "title", data=str(metadata.get("title", f"XRD-CT {start_uid[:8]}"))
            )
            entry.create_dataset(
                "experiment_identifier", data=str(metadata.get("experiment_id", ""))
            )
            if times is not None:
                for key, t in zip(("start_time", "end_time"), times, strict=True):
                    entry.create_dataset(
                        key, data=dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat()
                    )
            s = _nxdata(
                entry,
                "sinogram",
                sinogram,
                [
                    ("angle", angles, "deg"),
                    ("translation", translations, "mm"),
                    ("q", q, "1/angstrom"),
                ],
            )
            s["data"].attrs.update(units="counts", long_name="corrected (see /entry/process)")
            s.create_dataset("monitor", data=monitor).attrs["units"] = "counts/s"
            s.create_dataset("missing", data=missing)
            step = float(abs(translations[1] - translations[0])) if len(translations) > 1 else 1.0
            n = reconstruction.shape[0]
            grid = (np.arange(n) - (n - 1) / 2) * step
            r = _nxdata(
                entry,
                "reconstruction",
                reconstruction,
                [("y", grid, "mm"), ("x", grid, "mm"), ("q", q, "1/angstrom")],
            )
            r.attrs["units_note"] = "scattering per mm of path, from the corrected sinogram"
            r["data"].attrs.update(units="counts/mm", long_name="scattering per mm of path")
            r.attrs.update(reconstruction_attrs or {})
            if window is not None:
                w = _nxdata(
                    entry,
                    "window",
                    window.volume,
                    [("y", grid, "mm"), ("x", grid, "mm"), ("q", q, "1/angstrom")],
                )
                w["data"].attrs.update(units="counts/mm", long_name="sliding-window slice")
                w.attrs.update(
                    runs=list(window.runs),
                    start_time=dt.datetime.fromtimestamp(window.start, tz=dt.UTC).isoformat(),
                    end_time=dt.datetime.fromtimestamp(window.stop, tz=dt.UTC).isoformat(),
                )
            write_qscreen(entry, qscreen or {}, grid)
            write_phase_maps(entry, phase_maps or {}, grid, phase_fit)
            write_profiles(entry, profiles or {})
            if xrf is not None:
                write_xrf(entry, xrf, grid)
            if saxs is not None:
                write_saxs(entry, saxs, grid)
            write_electrochemistry(entry, log)
            if process is not None:
                write_process(entry, process, settings_json)
            inst = entry.require_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            det = inst.create_group("detector")
            det.attrs["NX_class"] = "NXdetector"
            det.create_dataset("name", data=detector_name)
            det.create_dataset("poni", data=poni_text)
            if wavelength is not None:
                beam = inst.create_group("beam")
                beam.attrs["NX_class"] = "NXbeam"
                beam.create_dataset("incident_wavelength", data=wavelength).attrs["units"] = (
                    "angstrom"
                )
                energy = HC_KEV_ANGSTROM / wavelength
                beam.create_dataset("incident_energy", data=energy).attrs["units"] = "keV"
            if ground_truth is not None:
                copy_ground_truth(entry, ground_truth)
            if sample_state:
                smp = entry.create_group("sample")
                smp.attrs["NX_class"] = "NXsample"
                for key, value in sample_state.items():
                    smp.create_dataset(key, data=value)
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no partial file
    return path


def write_process(entry: h5py.Group, process: dict[str, dict[str, Any]], settings: str) -> None:
    """``entry/process/<name>`` (NXprocess) per correction: applied, parameters, findings."""
    top = entry.create_group("process")
    top.attrs["NX_class"] = "NXcollection"
    if settings:
        top.create_dataset("settings", data=settings).attrs["format"] = "json"
    for name, record in process.items():
        g = top.create_group(name)
        g.attrs["NX_class"] = "NXprocess"
        g.create_dataset("program", data="operando")
        units = record.get("_units", {})
        for key, value in record.items():
            if key == "_units" or value is None:
                continue
            if isinstance(value, str | bool | int | float | np.ndarray | np.number):
                d = g.create_dataset(key, data=value)
            else:
                d = g.create_dataset(key, data=json.dumps(value, default=str))
            if key in units:
                d.attrs["units"] = units[key]


def commit(tmp: Path, path: Path) -> None:
    """Make ``tmp`` durable (fsync), then rename it to ``path`` and sync the folder.

    A crash or a full disk leaves either the old ``path`` or the new one, never a
    truncated file under the final name.
    """
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_ground_truth(entry: h5py.Group, phantom_file: Path) -> None:
    """Copy a simulated run's phantom (one group per phase) into ``entry/ground_truth``."""
    gt = entry.create_group("ground_truth")
    gt.attrs["NX_class"] = "NXcollection"
    with h5py.File(phantom_file, "r") as src:
        for key in src:
            src.copy(src[key], gt, name=key)
            if isinstance(gt[key], h5py.Group):
                gt[key].attrs["name"] = key
                if "name" not in gt[key]:
                    gt[key].create_dataset("name", data=key)


def update_electrochemistry(path: Path, log: ElectrochemistryLog) -> None:
    """Replace the electrochemistry of a written file (later runs extend the log).

    The file is never edited in place: a copy is updated, synced and renamed over it,
    so a full disk or a crash meanwhile leaves the earlier file intact.
    """
    tmp = path.with_name(path.name + ".part")
    check_space(path.parent, path.stat().st_size, f"a copy of {path.name}")
    try:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            write_electrochemistry(f["entry"], log)
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
