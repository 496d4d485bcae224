"""Reconstruction of every q bin: our incremental FBP vs ASTRA's FBP of the finished sinogram.

A 351 x 350 x 1000 q sinogram (the seed's ROI preset) is made by projecting three
component maps of a phantom with ASTRA and giving each its own diffraction pattern, plus
noise. Ours: each projection (one angle, all q) is filtered and back-projected as it
arrives (:class:`operando.live_processing.tomography.incremental_fbp.IncrementalFBP`); ``latency_s``
is the time from the last projection's arrival to the finished volume. ASTRA: CPU ``FBP``
(``linear`` projector, Ram-Lak) slice by slice after the scan, as the processor did before.
``rms_dev`` is the largest, over the slices compared, RMS difference as a fraction of the
ASTRA slice's range. ``--quick`` uses 200 q bins and times ASTRA on 50 of them (scaled).

The same projections also go through the truncated-SVD variant
(:class:`operando.live_processing.tomography.compressed_fbp.CompressedFBP`, ``--svd-rank``, basis
from the first 8 projections): ``svd_cpu_s``, ``svd_latency_s`` (including the expansion
to every q), ``svd_rel_error`` (the sinogram energy outside the basis, as it reports it)
and ``svd_rms_dev`` (as ``rms_dev``, against ASTRA). The phantom has three phases, so
what the truncation drops is the white noise outside their patterns.

Run ``python benchmarks/bench_reconstruct.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import astra
import numpy as np

from operando.live_processing.tomography.compressed_fbp import CompressedFBP
from operando.live_processing.tomography.incremental_fbp import IncrementalFBP
from operando.live_processing.tomography.reconstruct import fbp_stack

N_T, N_A = 351, 350


def phantom_sinogram(n_q: int, rng: np.random.Generator) -> np.ndarray:
    """(N_A, N_T, n_q): three phase maps, each with its own Bragg peaks, projected + noise."""
    yy, xx = np.mgrid[:N_T, :N_T] - N_T / 2
    disc = (xx**2 + yy**2) < (0.45 * N_T) ** 2
    maps = [disc * 0.2]
    for _ in range(2):
        m = np.zeros((N_T, N_T))
        for _ in range(40):
            cx, cy = rng.uniform(-120, 120, 2)
            r = rng.uniform(4, 20)
            m[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 1.0
        maps.append(m * disc)
    q = np.linspace(0.8, 4.6, n_q)
    spectra = []
    for k in range(3):
        s = 0.3 + 0.1 * np.exp(-q)
        for centre in rng.uniform(1.0, 4.4, 6):
            s = s + (k + 1) * np.exp(-0.5 * ((q - centre) / 0.01) ** 2)
        spectra.append(s)
    vol = astra.create_vol_geom(N_T, N_T)
    proj = astra.create_proj_geom(
        "parallel", 1.0, N_T, np.deg2rad(np.linspace(0, 180, N_A, endpoint=False))
    )
    pid = astra.create_projector("linear", proj, vol)
    sino = np.zeros((N_A, N_T, n_q), dtype=np.float32)
    for m, s in zip(maps, spectra, strict=True):
        sid, p = astra.create_sino(m.astype(np.float32), pid)
        astra.data2d.delete(sid)
        sino += (p[:, ::-1, None] * s[None, None, :]).astype(np.float32)
    astra.projector.delete(pid)
    sino += rng.normal(0, 0.5, sino.shape).astype(np.float32)
    return sino


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="200 q bins; ASTRA timed on 50")
    p.add_argument("--svd-rank", type=int, default=16, help="rank of the compressed variant")
    args = p.parse_args()
    n_q = 200 if args.quick else 1000
    n_astra = 50 if args.quick else n_q
    rng = np.random.default_rng(4)
    sino = phantom_sinogram(n_q, rng)
    angles = np.linspace(0, 180, N_A, endpoint=False)
    step = 0.001  # mm (1 um, the ROI preset)

    IncrementalFBP(angles, N_T, 4, step).add(0, sino[0, :, :4])  # compile (cached on disk)
    fbp = IncrementalFBP(angles, N_T, n_q, step)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(N_A):
        arrived = time.perf_counter()
        fbp.add(i, sino[i])
    volume = fbp.result()
    done = time.perf_counter()
    ours_cpu = time.process_time() - cpu0
    ours_wall = done - wall0
    latency = done - arrived

    svd = CompressedFBP(angles, N_T, n_q, step, rank=args.svd_rank)
    cpu0 = time.process_time()
    for i in range(N_A):
        arrived = time.perf_counter()
        svd.add(i, sino[i])
    svd_volume = svd.result()
    svd_latency = time.perf_counter() - arrived
    svd_cpu = time.process_time() - cpu0

    pick = np.linspace(0, n_q - 1, n_astra).round().astype(int)
    cpu0 = time.process_time()
    ref = fbp_stack(sino[:, :, pick], angles, step)
    astra_cpu = (time.process_time() - cpu0) * n_q / n_astra
    dev = svd_dev = 0.0
    for k, qi in enumerate(pick):
        r = ref[:, :, k]
        span = float(r.max() - r.min())
        dev = max(dev, float(np.sqrt(np.mean((volume[:, :, qi] - r) ** 2))) / span)
        svd_dev = max(svd_dev, float(np.sqrt(np.mean((svd_volume[:, :, qi] - r) ** 2))) / span)
    result = {
        "shape": [N_T, N_A, n_q],
        "latency_s": round(latency, 3),
        "ours_cpu_s": round(ours_cpu, 1),
        "ours_wall_s": round(ours_wall, 1),
        "astra_cpu_s": round(astra_cpu, 1),
        "astra_slices_timed": n_astra,
        "rms_dev": float(f"{dev:.3g}"),
        "svd_rank": args.svd_rank,
        "svd_cpu_s": round(svd_cpu, 1),
        "svd_latency_s": round(svd_latency, 3),
        "svd_rel_error": float(f"{svd.relative_error:.3g}"),
        "svd_rms_dev": float(f"{svd_dev:.3g}"),
    }
    print(f"sinogram {N_T} translations x {N_A} angles x {n_q} q bins")
    svd_name = f"SVD rank {args.svd_rank}"
    print(f"{'':34}{'ASTRA FBP (CPU)':>18}{'incremental':>14}{svd_name:>14}")
    print(f"{'CPU time, all q (s)':34}{astra_cpu:>18.1f}{ours_cpu:>14.1f}{svd_cpu:>14.1f}")
    print(
        f"{'ready after last projection (s)':34}{'after the scan':>18}{latency:>14.3f}"
        f"{svd_latency:>14.3f}"
    )
    print(f"{'largest RMS deviation / range':34}{'':>18}{dev:>14.2e}{svd_dev:>14.2e}")
    print(f"sinogram energy outside the SVD basis: {svd.relative_error:.2e} (relative)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
