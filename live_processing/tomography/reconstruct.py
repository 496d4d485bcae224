"""Filtered back projection of every q bin with ASTRA (CUDA when present, else CPU).

Geometry: the sinogram's translation axis is the sample translation x (mm); the beam
meets the sample where ``u cos θ - v sin θ = -x`` (``simulators.render``), so ASTRA's
detector coordinate is ``-x`` in pixels of one translation step. The slice grid has
one pixel per translation step, row index = y, column index = x.
"""

from __future__ import annotations

import astra
import numpy as np
import scipy.ndimage


def fbp_stack(
    sino: np.ndarray,
    angles_deg: np.ndarray,
    step_mm: float,
    axis: float | None = None,
    cuda: bool | None = None,
) -> np.ndarray:
    """Reconstruct (n_angles, n_trans, n_q) → (n_trans, n_trans, n_q), per mm of path.

    ``axis``: translation index of the rotation axis (default the grid's centre); the
    volume is centred on it. ASTRA's CPU FBP takes only plain parallel geometries (no
    post-alignment), so the sinogram is shifted to put the axis at the centre (cubic
    spline along the translation). ``cuda``: force ASTRA's CUDA (True) or CPU (False)
    FBP; default CUDA when a GPU is there.
    """
    _n_a, n_t, n_q = sino.shape
    vol = astra.create_vol_geom(n_t, n_t)
    proj = astra.create_proj_geom(
        "parallel", 1.0, n_t, np.deg2rad(np.asarray(angles_deg, dtype=float))
    )
    if axis is not None and axis != (n_t - 1) / 2:
        shift = (n_t - 1) / 2 - axis
        sino = scipy.ndimage.shift(sino, (0.0, shift, 0.0), order=3, mode="nearest")
    use_cuda = bool(astra.use_cuda()) if cuda is None else cuda
    pid = None if use_cuda else astra.create_projector("linear", proj, vol)
    out = np.empty((n_t, n_t, n_q), dtype=np.float32)
    sid = astra.data2d.create("-sino", proj, 0.0)
    rid = astra.data2d.create("-vol", vol, 0.0)
    cfg = astra.astra_dict("FBP_CUDA" if use_cuda else "FBP")
    cfg["ReconstructionDataId"] = rid
    cfg["ProjectionDataId"] = sid
    if pid is not None:
        cfg["ProjectorId"] = pid
    alg = astra.algorithm.create(cfg)
    try:
        flipped = np.ascontiguousarray(sino[:, ::-1, :].transpose(2, 0, 1), dtype=np.float32)
        for k in range(n_q):
            astra.data2d.store(sid, flipped[k])
            astra.algorithm.run(alg)
            out[:, :, k] = astra.data2d.get_shared(rid)
    finally:
        astra.algorithm.delete(alg)
        astra.data2d.delete([sid, rid])
        if pid is not None:
            astra.projector.delete(pid)
    return out / np.float32(step_mm)
