"""Running ``operando demo`` in tests, and measuring its files against the truth."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.ndimage

from operando.live_processing.analysis.maps import window_map
from operando.materials.phases import feature_window


def run_demo(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "operando.control.cli", "demo", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=400,
    )
    return res, time.monotonic() - t0


def run_demo_watched(
    out: Path, watch: Callable[[str], Any]
) -> tuple[subprocess.CompletedProcess, Any]:
    """The demo, with ``watch(url)`` run on its live display while it runs; what
    ``watch`` returned (or the exception it raised)."""
    cmd = [sys.executable, "-m", "operando.control.cli", "demo", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    url: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if "live view: http" in line:
                url.put(line.split("live view: ", 1)[1].split()[0])
        url.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: Any = None
    try:
        address = url.get(timeout=300)
        seen = watch(address) if address else RuntimeError("the demo printed no live view URL")
    except Exception as exc:
        seen = exc
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout.read()
    proc.wait(timeout=400)
    reader.join(10)
    proc.stdout.close()
    proc.stderr.close()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, "".join(err)), seen


def correlations(path: Path) -> dict[str, float]:
    """Pearson r between each major phase's map (from the reconstruction) and its fraction."""
    with h5py.File(path) as f:
        rec = f["entry/reconstruction/data"][()]
        q = f["entry/reconstruction/q"][()]
        gt = f["entry/ground_truth"]
        truth = {
            k: (g["fraction"][()], g["lattice_a"][()])
            for k, g in gt.items()
            if isinstance(g, h5py.Group)
        }
    present = {
        k: (float(np.median(a[fr > 0])) if (a[fr > 0] > 0).any() else None)
        for k, (fr, a) in truth.items()
        if fr.max() > 0.05
    }
    n = next(iter(truth.values()))[0].shape[0]
    m = (rec.shape[0] - n) // 2  # scans with artefacts reach beyond the sample
    rec = rec[m : m + n, m : m + n]
    out = {}
    for name, (frac, _) in truth.items():
        if frac.max() < 0.5:
            continue
        centre, half, background = feature_window(name, present)
        m = window_map(rec, q, centre, half, background)
        out[name] = float(np.corrcoef(m.ravel(), frac.ravel())[0, 1])
    return out


def lattice_errors(path: Path, phase: str = "LiMn2O4") -> dict[str, float]:
    """A run file's lattice map of ``phase`` against its ground truth, inside the
    particles (fraction ≥ 0.5, one voxel in from the edge): RMS error, the share of
    voxels whose error map covers the true error, the share mapped, the share NaN
    where the phase is not, and the map's and truth's means there."""
    with h5py.File(path) as f:
        g = f[f"entry/maps/{phase}/lattice_a"]
        assert g.attrs["signal"] == "data" and g["data"].attrs["units"] == "angstrom"
        a = g["data"][()]
        err = f[f"entry/maps/{phase}/lattice_a_error/data"][()]
        frac = f[f"entry/ground_truth/{phase}/fraction"][()]
        truth = f[f"entry/ground_truth/{phase}/lattice_a"][()]
    n = frac.shape[0]
    m = (a.shape[0] - n) // 2  # scans with artefacts reach beyond the sample
    a, err = a[m : m + n, m : m + n], err[m : m + n, m : m + n]
    inside = scipy.ndimage.binary_erosion(frac >= 0.5)
    d = a[inside] - truth[inside]
    return {
        "rms": float(np.sqrt(np.nanmean(d**2))),
        "covered": float(np.mean(np.abs(d) <= err[inside])),
        "finite": float(np.isfinite(d).mean()),
        "nan_outside": float(np.isnan(a[frac == 0]).mean()),
        "map_mean": float(np.nanmean(a[inside])),
        "true_mean": float(truth[inside].mean()),
    }


def best_channel_r(path: Path) -> dict[str, float]:
    """#12's metric, literally: for each major phase (fraction ≥ 0.5 somewhere), the
    Pearson r between its fraction and the reconstruction's best single q channel."""
    with h5py.File(path) as f:
        rec = f["entry/reconstruction/data"][()]
        gt = f["entry/ground_truth"]
        fractions = {k: g["fraction"][()] for k, g in gt.items() if isinstance(g, h5py.Group)}
    out = {}
    for name, frac in fractions.items():
        if frac.max() < 0.5:
            continue
        n = frac.shape[0]
        m = (rec.shape[0] - n) // 2
        v = rec[m : m + n, m : m + n].reshape(n * n, -1)
        v = v - v.mean(axis=0)
        f0 = frac.ravel() - frac.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (v * f0[:, None]).sum(0) / np.sqrt((v**2).sum(0) * (f0**2).sum())
        out[name] = float(np.nanmax(r))
    return out


def scan_files(res: subprocess.CompletedProcess) -> list[Path]:
    return [
        Path(ln) for ln in res.stdout.strip().splitlines() if ln.endswith(".h5") and " " not in ln
    ]


def spinel_lattice(path: Path) -> tuple[float, float]:
    """(lithium content, mean ground-truth lattice parameter of the Li-rich spinel)."""
    with h5py.File(path) as f:
        gt = f["entry/ground_truth/LiMn2O4"]
        frac, a = gt["fraction"][()], gt["lattice_a"][()]
        return float(f["entry/sample/lithium_x"][()]), float(a[frac > 0].mean())
