"""Particles, their depth, and maps profiled from the surface inwards (seeds 000, 001).

- :func:`particle_labels`: threshold a map and label its connected regions
  (``scipy.ndimage.label``), dropping specks;
- :func:`depth_map`: each particle voxel's distance (mm) to its particle's surface;
- :func:`depth_profile`: any map's mean ± sd per depth bin;
- :func:`shell_fractions`: each phase's share of the phases' total per depth shell;
- :func:`summed_patterns`: patterns summed per particle or per shell, for Rietveld
  programs (``.xy``: :func:`..files.xy.write_xy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage


def particle_labels(
    image: np.ndarray, threshold: float, min_voxels: int = 4
) -> tuple[np.ndarray, int]:
    """(labels, count): regions where ``image`` ≥ ``threshold`` (face-connected), those of
    fewer than ``min_voxels`` voxels dropped, numbered 1…count."""
    labels, n = scipy.ndimage.label(np.nan_to_num(image, nan=-np.inf) >= threshold)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    renumber = np.zeros(n + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumber[labels], int(keep.sum())


def depth_map(labels: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Distance (mm) from each labelled voxel's centre to its particle's surface (half a
    voxel for the outermost); NaN outside particles. Touching particles are kept apart."""
    depth = np.full(labels.shape, np.nan)
    for k, region in enumerate(scipy.ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        padded = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in region)
        own = labels[padded] == k
        inner = scipy.ndimage.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
        depth[padded] = np.where(own, (inner - 0.5) * pixel_mm, depth[padded])
    return depth


@dataclass(frozen=True)
class Profile:
    """A map's mean and standard deviation per depth bin (mm from the surface)."""

    depth: np.ndarray  # bin centres
    mean: np.ndarray
    sd: np.ndarray
    count: np.ndarray


def depth_profile(values: np.ndarray, depth: np.ndarray, bin_mm: float) -> Profile:
    """``values`` averaged per depth bin of ``bin_mm`` (voxels with a finite depth and
    value)."""
    if bin_mm <= 0:
        raise ValueError(f"depth bin {bin_mm} mm must be > 0")
    ok = np.isfinite(depth) & np.isfinite(values)
    index = np.floor(depth[ok] / bin_mm).astype(int)
    n_bins = int(index.max()) + 1 if index.size else 0
    count = np.bincount(index, minlength=n_bins).astype(float)
    total = np.bincount(index, values[ok], minlength=n_bins)
    squares = np.bincount(index, values[ok] ** 2, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sd = np.sqrt(np.clip(squares / count - mean**2, 0.0, None))
    return Profile((np.arange(n_bins) + 0.5) * bin_mm, mean, sd, count)


def shell_fractions(
    maps: dict[str, np.ndarray], depth: np.ndarray, edges_mm: np.ndarray
) -> dict[str, np.ndarray]:
    """Each map's share of all the maps' sum within each depth shell [edges[i],
    edges[i+1]) (NaN for an empty shell)."""
    shells = np.digitize(depth, edges_mm) - 1
    n = len(edges_mm) - 1
    inside = np.isfinite(depth) & (shells >= 0) & (shells < n)
    sums = {k: np.bincount(shells[inside], np.nan_to_num(m[inside]), n) for k, m in maps.items()}
    whole = sum(sums.values())
    with np.errstate(invalid="ignore", divide="ignore"):
        return {k: np.where(whole > 0, s / whole, np.nan) for k, s in sums.items()}


def summed_patterns(volume: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The patterns (n_groups, n_q) of ``volume`` (ny, nx, n_q) summed over each group of
    voxels (``groups`` 1…n_groups; 0 and below left out): per particle from
    :func:`particle_labels`, per shell from ``np.digitize`` of a depth map."""
    flat = volume.reshape(-1, volume.shape[-1])
    g = groups.ravel()
    out = np.zeros((n_groups, volume.shape[-1]), dtype=np.float64)
    for k in range(1, n_groups + 1):
        out[k - 1] = flat[g == k].sum(axis=0)
    return out
