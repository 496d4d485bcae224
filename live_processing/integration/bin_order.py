"""A frame's pixels in a pixel-to-bin CSR matrix's (bin-major) order, read once in raster order.

Gathering ``frame[indices]`` bin by bin jumps all over the frame, once per bin; reading
the frame in raster order and writing each pixel to its place in bin order touches every
cache line of the frame once. The per-bin kernels then read their bins contiguously.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _scatter(
    frame: np.ndarray,
    pixels: np.ndarray,
    dest: np.ndarray,
    scale: np.ndarray | None,
    out: np.ndarray,
    n_chunks: int,
) -> None:
    """out[dest[k]] = frame[pixels[k]] (× scale[k]) as float32, in parallel raster chunks."""
    n = pixels.size
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        for k in range(c * step, min(n, (c + 1) * step)):
            if scale is None:
                out[dest[k]] = np.float32(frame[pixels[k]])
            else:
                out[dest[k]] = np.float32(frame[pixels[k]]) * scale[k]


class BinOrder:
    """The raster-to-bin permutation of a CSR matrix, and bin groups for the threads."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_groups: int) -> None:
        self.order = np.argsort(indices, kind="stable")  # bin-order positions, in raster order
        self.pixels = indices[self.order].astype(np.uint32)
        self.dest = self.order.astype(np.uint32)
        n_bins = indptr.size - 1
        cuts = np.searchsorted(indptr, np.linspace(0, indices.size, n_groups + 1))
        groups = np.unique(np.clip(cuts, 0, n_bins)).astype(np.int64)
        groups[0], groups[-1] = 0, n_bins
        self.groups = groups  # bin boundaries holding about equal pixel counts

    def in_raster_order(self, per_entry: np.ndarray) -> np.ndarray:
        """A per-matrix-entry array reordered to go with :meth:`scatter`'s ``scale``."""
        return np.ascontiguousarray(per_entry[self.order])

    def scatter(self, frame: np.ndarray, out: np.ndarray, scale: np.ndarray | None = None) -> None:
        """Fill out (float32, one per matrix entry) from a flat frame of any dtype."""
        _scatter(frame, self.pixels, self.dest, scale, out, 4 * numba.get_num_threads())
