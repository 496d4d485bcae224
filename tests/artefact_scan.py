"""Scans of the simulated sample with artefacts, and their errors against ground truth.

Frames are rendered by the simulator's renderer (the IOC's own), integrated by the
processor's integrator and fed to the processor's run state with chosen corrections,
in-process: the same code as the live path, minus the sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from operando.live_processing.analysis.maps import window_map
from operando.live_processing.integration.integrate import Integrator
from operando.live_processing.service.run_state import RunState
from operando.materials.phases import feature_window
from operando.protocols.processing import ProcessingSettings, parse_corrections
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators.artefacts import Artefacts
from operando.simulators.phantom import Phantom, default_phantom
from operando.simulators.render import FrameRenderer, default_integrator

EXPOSURE = 0.01
DIODE_FULL_BEAM = 1.0e6  # counts/s, as the IOC's diode


@dataclass
class Scan:
    """Integrated patterns of every cell with the readings the plan would record."""

    angles: np.ndarray
    translations: np.ndarray
    patterns: np.ndarray  # (n_a, n_t, n_q)
    monitor: np.ndarray  # (n_a, n_t)
    transmission: np.ndarray
    integrator: Integrator
    phantom: Phantom


def sample(n: int = 24, pixel: float = 0.05, blur: float = 0.7) -> Phantom:
    """The demo's cell on a coarse grid, its maps blurred by ``blur`` pixels (Gaussian σ).

    A sample with features of a few pixels: sampling it off the grid (a sub-step axis
    offset, jitter) then costs little, so what the errors measure is the artefact.
    """
    import scipy.ndimage

    ph = default_phantom(n, pixel)
    if not blur:
        return ph
    fraction, lattice = {}, {}
    for name, frac in ph.fraction.items():
        f = scipy.ndimage.gaussian_filter(frac, blur)
        a = ph.lattice_a[name]
        if (a > 0).any():  # extend each voxel's lattice to where the blur reaches
            _d, (iy, ix) = scipy.ndimage.distance_transform_edt(a <= 0, return_indices=True)
            a = a[iy, ix]
        fraction[name], lattice[name] = f, a
    return Phantom(ph.pixel_size, fraction, lattice)


def acquire(
    phantom: Phantom, artefacts: Artefacts, *, method: str = "mean", **options: Any
) -> Scan:
    """Step-scan the phantom over 0–180° with ``margin`` extra positions at each side
    (``options``: those of :func:`acquire_each`)."""
    return acquire_each(phantom, artefacts, (method,), **options)[method]


def acquire_each(
    phantom: Phantom,
    artefacts: Artefacts,
    methods: tuple[str, ...],
    *,
    n_angles: int = 30,
    margin: int = 3,
    angles: np.ndarray | None = None,
    seed: int = 0,
    binning: int = 8,
    decay_period: float = 0.0,
    noise: bool = True,
    translations: np.ndarray | None = None,
    bins: int = 200,
    counts_of: Phantom | None = None,
) -> dict[str, Scan]:
    """One scan's frames integrated by each of ``methods`` (rendered once).

    ``translations`` (mm) replace the default grid: the sample's pixels plus ``margin``.
    ``counts_of``: render at the count scale this phantom would have (same support).
    """
    ai = default_integrator(binning)
    renderer = FrameRenderer(counts_of or phantom, ai, artefacts=artefacts)
    if counts_of is not None:
        renderer.set_phantom(phantom)
    n = phantom.shape[0] + 2 * margin
    xs = (np.arange(n) - (n - 1) / 2) * phantom.pixel_size
    if translations is not None:
        xs, n = np.asarray(translations, dtype=float), len(translations)
    th = np.linspace(0, 180, n_angles, endpoint=False) if angles is None else angles
    integs = {m: Integrator(ai, bins, (0.8, 4.6), m) for m in methods}
    rng = np.random.default_rng(seed)
    pats = {m: np.zeros((th.size, n, bins), np.float32) for m in methods}
    mon = np.zeros((th.size, n))
    trans = np.zeros((th.size, n))
    k = 0
    for i, a in enumerate(th):
        for j, x in enumerate(xs):
            flux = 1.0
            if decay_period:  # a sawtooth: 30 % lost, then a top-up, every period points
                flux = 0.7 ** ((k % decay_period) / decay_period)
            if noise:
                frame = renderer.frame(float(a), float(x), EXPOSURE, flux, rng)
            else:
                frame = renderer.expected(float(a), float(x), EXPOSURE, flux)
            for m, integ in integs.items():
                pats[m][i, j] = integ.integrate(frame)[1]
            mon[i, j] = (
                DIODE_FULL_BEAM * flux * (1 + (0.001 * rng.standard_normal() if noise else 0))
            )
            trans[i, j] = mon[i, j] * renderer.transmission(float(a), float(x))
            k += 1
    return {m: Scan(th, xs, pats[m], mon, trans, integs[m], phantom) for m in methods}


def reconstruct(scan: Scan, corrections: str, out: Path) -> tuple[np.ndarray, RunState]:
    """The processor's final volume of the scan with these corrections."""
    bins = scan.integrator.q.size
    settings = ProcessingSettings(bins=bins, corrections=parse_corrections(corrections))
    geom = XrdctGeometry(
        list(scan.angles), list(scan.translations), False, "f", "s", "m", "unused.poni"
    )
    run = RunState.begin("r", geom, scan.integrator, "e", 0.0, settings, {}, out, "run")
    for i in range(scan.angles.size):
        for j in range(scan.translations.size):
            run.sinogram.put(i, j, scan.patterns[i, j], scan.monitor[i, j], scan.transmission[i, j])
        run.project_if_complete(i)
    volume = run.final_reconstruction()
    if run.live is not None:
        run.live.close(remove=True)
    return volume, run


def fine_truth(phantom: Phantom, out: Path, margin: int, factor: int = 2) -> np.ndarray:
    """The slice independently of where a scan samples it: a noise-free scan ``factor``×
    finer in translation and in angle, reconstructed and binned back to the scan's grid
    (a step scan with ``margin`` extra positions at each side)."""
    n = phantom.shape[0] + 2 * margin
    fine = np.arange(n * factor) - (n * factor - 1) / 2
    scan = acquire(
        phantom,
        Artefacts(),
        noise=False,
        translations=fine * phantom.pixel_size / factor,
        n_angles=30 * factor,
    )
    volume = reconstruct(scan, "normalise", out)[0]
    return volume.reshape(n, factor, n, factor, -1).mean(axis=(1, 3))


def maps(volume: np.ndarray, scan: Scan) -> dict[str, np.ndarray]:
    """Each major phase's map (the #2 metric's q window), on the phantom's grid."""
    ph = scan.phantom
    n = ph.shape[0]
    m = (volume.shape[0] - n) // 2
    vol = volume[m : m + n, m : m + n]
    present = {
        k: (float(np.median(a[f > 0])) if (a[f > 0] > 0).any() else None)
        for k, f, a in ((k, ph.fraction[k], ph.lattice_a[k]) for k in ph.fraction)
        if f.max() > 0.05
    }
    out = {}
    for name, frac in ph.fraction.items():
        if frac.max() >= 0.5:
            centre, half, background = feature_window(name, present)
            out[name] = window_map(vol, scan.integrator.q, centre, half, background)
    return out


def errors(volume: np.ndarray, truth: np.ndarray, scan: Scan) -> dict[str, tuple[float, float]]:
    """Per major phase: (Pearson r, normalised RMS) of the map against the truth's map.

    Inside the sample's circle (the reconstruction circle of a scan that covers it). The
    map is scaled to the truth's by least squares through zero first: the scale of a
    map (the monitor's reference, what a trimmed mean leaves of a spotty ring) is not
    what a correction is for; offsets and structure count in full.
    """
    got, want = maps(volume, scan), maps(truth, scan)
    n = scan.phantom.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    disc = np.hypot(yy, xx) <= n / 2  # the sample's circle: the reconstruction circle
    out = {}
    for k in want:
        g, w = got[k][disc], want[k][disc]
        scale = float(g @ w / (g @ g)) if g @ g > 0 else 0.0
        r = float(np.corrcoef(g, w)[0, 1])
        out[k] = (r, float(np.linalg.norm(g * scale - w) / np.linalg.norm(w)))
    return out


def registered(volume: np.ndarray, truth: np.ndarray, scan: Scan, reach: float = 1.5) -> np.ndarray:
    """``volume`` moved rigidly (sub-pixel, in the slice plane) to best match ``truth``.

    A common translation of every projection's error is, to the data, a move of the
    sample: no correction can tell it from the stage's zero. Errors that a correction
    is for are what remains after this registration.
    """
    import scipy.ndimage

    got, want = volume.sum(axis=2), truth.sum(axis=2)
    best, best_err = (0.0, 0.0), np.inf
    steps = np.arange(-reach, reach + 1e-9, 0.1)
    for dy in steps:
        for dx in steps:
            moved = scipy.ndimage.shift(got, (dy, dx), order=3, mode="nearest")
            err = float(((moved - want) ** 2).sum())
            if err < best_err:
                best, best_err = (dy, dx), err
    fine = np.arange(-0.1, 0.1 + 1e-9, 0.02)
    centre = best
    for dy in centre[0] + fine:
        for dx in centre[1] + fine:
            moved = scipy.ndimage.shift(got, (dy, dx), order=3, mode="nearest")
            err = float(((moved - want) ** 2).sum())
            if err < best_err:
                best, best_err = (dy, dx), err
    return scipy.ndimage.shift(volume, (*best, 0.0), order=3, mode="nearest")
