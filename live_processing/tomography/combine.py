"""Combining scans: an ROI scan inside a coarse one (seed ``000``, supplementary note 4).

A fine region-of-interest scan covers only the middle of the sample: reconstructed
alone, everything outside it leaks in as a bright truncation ring at its edge. The
coarse scan of the whole sample fills in what the ROI scan misses:

1. the coarse sinogram is expanded onto the ROI's grid: linear interpolation along the
   translation (by the ratio of the steps) and along the angle (the row at θ + 180° is
   the row at θ mirrored about the rotation axis, so any ROI angle has neighbours);
2. it is brought to the ROI's intensity by a scale factor fitted where the two overlap
   (both are already normalised by their monitors; the fit also takes up a different
   exposure);
3. the ROI's cells replace the expanded coarse ones; beyond each end of the ROI the
   expanded coarse rows are matched to the ROI's last cell (their difference there,
   fading over one coarse step), so the seam carries no step into the ramp filter, and
4. only the ROI's disc is reconstructed, on the fine grid: the disc of the region
   wanted, inside the ROI scan's ``guard`` cells at each end (the ramp filter weighs
   the cells just outside a disc most; there they are the ROI's own, not the coarse
   scan's interpolation).

Step 3's seam matching is ours (the seed merges without it): the coarse data just
outside the ROI weigh most in the ROI's outermost pixels, and there they are known
best from the ROI's own edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .incremental_fbp import IncrementalFBP


@dataclass(frozen=True)
class Combined:
    """A merged sinogram on the fine grid, ready to reconstruct the ROI disc."""

    sinogram: np.ndarray  # (n_angles, n_t, n_q): expanded coarse, ROI cells in place
    translations: np.ndarray  # mm, the fine grid over the coarse scan's extent
    roi: slice  # where the ROI's translations sit in it
    scale: float  # the factor that brought the coarse scan to the ROI's intensity
    expansion: float  # coarse step / ROI step


def _interp_weights(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and weight of the left neighbour in ``src`` (ascending) of every ``dst``."""
    k = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, src.size - 2)
    w = np.clip((dst - src[k]) / (src[k + 1] - src[k]), 0.0, 1.0)
    return k, w


def expand(
    sino: np.ndarray,
    angles: np.ndarray,
    translations: np.ndarray,
    new_angles: np.ndarray,
    new_translations: np.ndarray,
    axis_mm: float,
) -> np.ndarray:
    """``sino`` (n_a, n_t, n_q) resampled at ``new_angles`` × ``new_translations``.

    Linear in translation (zero beyond the scan's ends) and in angle; angles wrap with
    the 180° mirror about the rotation axis at ``axis_mm``.
    """
    order = np.argsort(translations)
    x, s = np.asarray(translations, float)[order], sino[:, order]
    k, w = _interp_weights(x, new_translations)
    inside = (new_translations >= x[0]) & (new_translations <= x[-1])
    along = (s[:, k] * (1 - w)[None, :, None] + s[:, k + 1] * w[None, :, None]) * inside[
        None, :, None
    ]
    mirrored_x = 2 * axis_mm - new_translations
    km, wm = _interp_weights(x, mirrored_x)
    inside_m = (mirrored_x >= x[0]) & (mirrored_x <= x[-1])
    mirrored = (s[:, km] * (1 - wm)[None, :, None] + s[:, km + 1] * wm[None, :, None]) * inside_m[
        None, :, None
    ]
    a = np.mod(np.asarray(angles, float), 360.0)
    ext_a = np.concatenate([a - 360, a - 180, a, a + 180])
    ext_rows = np.concatenate([along, mirrored, along, mirrored])
    order_a = np.argsort(ext_a)
    ext_a, ext_rows = ext_a[order_a], ext_rows[order_a]
    ka, wa = _interp_weights(ext_a, np.mod(np.asarray(new_angles, float), 360.0))
    out = ext_rows[ka] * (1 - wa)[:, None, None] + ext_rows[ka + 1] * wa[:, None, None]
    return out.astype(np.float32)


def combine(
    coarse: np.ndarray,
    coarse_angles: np.ndarray,
    coarse_translations: np.ndarray,
    roi: np.ndarray,
    roi_angles: np.ndarray,
    roi_translations: np.ndarray,
    axis_mm: float,
) -> Combined:
    """Merge an ROI sinogram into the coarse one, on the ROI's fine grid."""
    rx = np.asarray(roi_translations, float)
    step = float(rx[1] - rx[0])
    cx = np.asarray(coarse_translations, float)
    if step <= 0 or not (cx.min() <= rx.min() and rx.max() <= cx.max()):
        raise ValueError(
            f"ROI translations {rx.min():g}..{rx.max():g} mm must be ascending and inside the "
            f"coarse scan's {cx.min():g}..{cx.max():g} mm"
        )
    before = int(np.floor((rx[0] - cx.min()) / step + 1e-9))
    after = int(np.floor((cx.max() - rx[-1]) / step + 1e-9))
    grid = rx[0] + step * np.arange(-before, rx.size + after)
    expanded = expand(coarse, coarse_angles, cx, roi_angles, grid, axis_mm)
    where = slice(before, before + rx.size)
    overlap = expanded[:, where]
    good = np.isfinite(roi) & np.isfinite(overlap)
    denom = float((overlap[good].astype(np.float64) ** 2).sum())
    scale = float((overlap[good].astype(np.float64) * roi[good]).sum() / denom) if denom else 1.0
    merged = expanded * np.float32(scale)
    expansion = abs(float(cx[1] - cx[0])) / step if cx.size > 1 else 1.0
    left, right = where.start, where.stop - 1
    for edge, cells in ((left, range(left)), (right, range(right + 1, grid.size))):
        seam = np.nan_to_num(roi[:, edge - left] - merged[:, edge])
        for k in cells:
            merged[:, k] += seam * np.float32(np.exp(-abs(k - edge) / expansion))
    merged[:, where] = np.where(np.isfinite(roi), roi, merged[:, where])
    return Combined(merged, grid, where, scale, expansion)


def reconstruct_roi(
    combined: Combined, angles: np.ndarray, axis_mm: float, guard: int = 0
) -> np.ndarray:
    """FBP of the merged sinogram over the ROI's disc only, less ``guard`` cells at each
    end: (n, n, n_q) per mm with n = the ROI's translations − 2 · guard."""
    x = combined.translations
    step = float(x[1] - x[0])
    n_roi = combined.roi.stop - combined.roi.start - 2 * guard
    if n_roi < 1:
        raise ValueError(f"ROI guard {guard} leaves nothing of its {n_roi + 2 * guard} cells")
    n_a, n_t, n_q = combined.sinogram.shape
    axis = (axis_mm - x[0]) / step
    fbp = IncrementalFBP(np.asarray(angles), n_t, n_q, step, axis=axis, size=n_roi)
    for i in range(n_a):
        fbp.add(i, np.nan_to_num(combined.sinogram[i]))
    return fbp.result()


@dataclass(frozen=True)
class CoarseScan:
    """What an ROI scan needs of its coarse scan, kept when the coarse scan is written."""

    uid: str
    sinogram: np.ndarray  # corrected, (n_angles, n_t, n_q)
    angles: np.ndarray
    translations: np.ndarray
    axis_mm: float  # the rotation axis it found (the same stage: the ROI's axis too)


def roi_with_coarse(
    coarse: CoarseScan,
    roi: np.ndarray,
    angles: np.ndarray,
    translations: np.ndarray,
    guard: int = 0,
) -> tuple[np.ndarray, dict[str, object]]:
    """The ROI's disc reconstructed from the merged sinogram, and what to record of it."""
    merged = combine(
        coarse.sinogram, coarse.angles, coarse.translations, roi, angles, translations,
        coarse.axis_mm,
    )  # fmt: skip
    volume = reconstruct_roi(merged, angles, coarse.axis_mm, guard)
    record: dict[str, object] = {
        "coarse_run": coarse.uid,
        "scale": merged.scale,
        "expansion": merged.expansion,
        "axis": coarse.axis_mm,
        "merged_translations": int(merged.translations.size),
        "guard": guard,
    }
    return volume, record
