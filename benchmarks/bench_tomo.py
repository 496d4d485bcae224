"""Full-field absorption tomography: our live reconstruction against ASTRA's FBP.

Seed 002's scan (2505 projections over 360°, 20 ms each) of the simulated camera at its
default size (48 rows x 160 columns, every row a slice), rendered first (not timed):
Beer–Lambert projections of the default cell with flat-field structure, dark current
and Poisson noise, 21 darks and 10 flats. ``ours_pps`` is projections per second through
:class:`operando.live_processing.tomography.absorption.AbsorptionVolume` (flat/dark
correction, −log, the ramp filter and the back projection into every slice, each
projection as it comes) until the volume holds them all: the live path must beat the
camera's 100 projections per second (``keeps_up``). ``astra_s`` is ASTRA's CPU FBP of the
finished sinogram (every slice), as :meth:`AbsorptionVolume.final` runs it; with a GPU,
``astra_gpu_s`` is the same on CUDA. ``r`` is the live volume's correlation with the
phantom's attenuation map.

Run ``python benchmarks/bench_tomo.py [--quick]`` (``--quick``: 501 projections); the
last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import astra
import numpy as np
import scipy.ndimage

from operando.live_processing.tomography.absorption import AbsorptionVolume
from operando.live_processing.tomography.reconstruct import fbp_stack
from operando.plans.tomo import TOMO_PRESETS, tomo_angles
from operando.simulators.camera import ProjectionRenderer
from operando.simulators.phantom import default_phantom


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    preset = TOMO_PRESETS["seed002"]
    n = 501 if args.quick else preset.n_projections
    angles = np.asarray(tomo_angles(n, preset.span))
    r = ProjectionRenderer(default_phantom())
    rng = np.random.default_rng(1)
    darks = [r.frame(0.0, 0.0, preset.exposure, 0.0, rng) for _ in range(preset.n_darks)]
    flats = [r.frame(0.0, 2.0, preset.exposure, 1.0, rng) for _ in range(preset.n_flats // 2)]
    t0 = time.perf_counter()
    frames = [r.frame(float(a), 0.0, preset.exposure, 1.0, rng) for a in angles]
    render_s = time.perf_counter() - t0
    vol = AbsorptionVolume(angles, r.shape, r.pixel)
    for d in darks:
        vol.add_dark(d)
    for f in flats:
        vol.add_flat(f)
    vol.add_projection(0, frames[0])  # numba compiles its kernels once
    vol = AbsorptionVolume(angles, r.shape, r.pixel)
    for d in darks:
        vol.add_dark(d)
    for f in flats:
        vol.add_flat(f)
    t0 = time.perf_counter()
    for k, frame in enumerate(frames):
        vol.add_projection(k, frame)
    live = vol.volume()
    ours_s = time.perf_counter() - t0
    flat = vol.flat
    sino = np.stack([vol.line_integrals(f, flat).T[::-1] for f in vol.raw])
    cuda = bool(astra.use_cuda())
    t0 = time.perf_counter()
    fbp_stack(sino, angles, r.pixel, cuda=False)
    astra_s = time.perf_counter() - t0
    result: dict[str, float | bool | int] = {
        "projections": n,
        "rows": r.shape[0],
        "columns": r.shape[1],
        "astra_s": round(astra_s, 3),
    }
    if cuda:
        t0 = time.perf_counter()
        fbp_stack(sino, angles, r.pixel, cuda=True)
        result["astra_gpu_s"] = round(time.perf_counter() - t0, 3)
    m = r.phantom.shape[0]
    at = (np.arange(r.shape[1]) - (r.shape[1] - 1) / 2) * r.pixel / r.phantom.pixel_size
    yy, xx = np.meshgrid(at + (m - 1) / 2, at + (m - 1) / 2, indexing="ij")
    mu = scipy.ndimage.map_coordinates(r.mu_full, [yy, xx], order=1, cval=0.0)
    corr = float(np.corrcoef(live.mean(axis=0).ravel(), mu.ravel())[0, 1])
    result.update(
        ours_pps=round(n / ours_s, 1),
        keeps_up=bool(n / ours_s >= 100.0),
        render_pps=round(n / render_s, 1),
        r=round(corr, 4),
    )
    print(f"{n} projections of {r.shape[0]} x {r.shape[1]} over {preset.span:g} deg")
    print(f"  ours (live: correct, filter, back-project each): {n / ours_s:8.1f} projections/s")
    print(f"  ASTRA FBP (CPU) of the finished sinogram:  {astra_s:8.2f} s")
    if cuda:
        print(f"  ASTRA FBP_CUDA of the finished sinogram:   {result['astra_gpu_s']:8.2f} s")
    print(f"  live volume vs the phantom's attenuation: r = {corr:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
