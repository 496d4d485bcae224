"""Incremental FBP of a truncated-SVD basis of the q axis: r channels instead of every q bin.

FBP is linear and treats every q bin alike, so back-projecting r combinations of the q
bins and expanding the volume afterwards gives the FBP of every q bin, up to what the
truncation leaves out. The basis is the top ``rank`` right singular vectors of the first
``basis_rows`` projections; every projection is then projected onto it (n_t × r) and fed
to an :class:`.incremental_fbp.IncrementalFBP` of r channels, which costs r/n_q of the
full one. What each projection loses (its part outside the basis) is accumulated and
reported as :attr:`CompressedFBP.relative_error`, ``sqrt(Σ‖P − P·V·Vᵀ‖² / Σ‖P‖²)`` over
the projections added: the sinogram's relative error, of which the volume's error is the
FBP. A phase that first appears after the basis was made shows up in that figure.
"""

from __future__ import annotations

import numpy as np

from .incremental_fbp import IncrementalFBP, accept_projection, check_axis


class CompressedFBP:
    """A running FBP of an (n_angles, n_t, n_q) sinogram on a rank-r basis of q (same API)."""

    def __init__(
        self,
        angles_deg: np.ndarray,
        n_t: int,
        n_q: int,
        step_mm: float = 1.0,
        rank: int = 32,
        basis_rows: int = 8,
        batch: int = 4,
        axis: float | None = None,
    ) -> None:
        if not 1 <= rank <= n_q:
            raise ValueError(f"CompressedFBP: rank {rank} must be between 1 and n_q = {n_q}")
        if basis_rows < 1:
            raise ValueError(f"CompressedFBP: basis_rows {basis_rows} must be >= 1")
        self.angles = np.asarray(angles_deg, dtype=float)
        self.n_t, self.n_q, self.step_mm, self.batch = n_t, n_q, step_mm, batch
        self.rank, self.basis_rows = rank, basis_rows
        self.axis = (n_t - 1) / 2 if axis is None else check_axis(axis, n_t)
        self.added = np.zeros(len(self.angles), dtype=bool)
        self.basis: np.ndarray | None = None  # (n_q, r), orthonormal columns
        self._basis64 = np.zeros((n_q, 0))
        self._inner: IncrementalFBP | None = None
        self._early: list[tuple[int, np.ndarray, float]] = []
        self._lost = 0.0
        self._energy = 0.0
        self._expanded: np.ndarray | None = None

    @property
    def n_added(self) -> int:
        return int(self.added.sum())

    @property
    def relative_error(self) -> float:
        """sqrt(Σ‖P − P·V·Vᵀ‖² / Σ‖P‖²) over the projections fed through the basis so far."""
        return float(np.sqrt(self._lost / self._energy)) if self._energy > 0 else 0.0

    def add(self, index: int, projection: np.ndarray, scale: float = 1.0) -> None:
        """Add projection ``index`` (n_t, n_q); the first ``basis_rows`` make the basis."""
        projection = accept_projection(self.added, index, projection, (self.n_t, self.n_q))
        self._expanded = None
        if self.basis is None:
            self._early.append((index, projection, scale))
            if len(self._early) >= self.basis_rows:
                self._make_basis()
        else:
            self._feed(index, projection, scale)

    def _make_basis(self) -> None:
        # right singular vectors of the stacked projections: eigenvectors of their Gram
        # matrix (n_q × n_q), cheaper than the SVD of the (rows·n_t × n_q) stack
        gram = np.zeros((self.n_q, self.n_q))
        for _, p, s in self._early:
            p64 = p.astype(np.float64) * s
            gram += p64.T @ p64
        _values, vectors = np.linalg.eigh(gram)  # ascending
        self._basis64 = np.ascontiguousarray(vectors[:, ::-1][:, : self.rank])
        self.basis = self._basis64.astype(np.float32)
        r = self.basis.shape[1]
        self._inner = IncrementalFBP(self.angles, self.n_t, r, self.step_mm, self.batch, self.axis)
        for index, projection, scale in self._early:
            self._feed(index, projection, scale)
        self._early.clear()

    def _feed(self, index: int, projection: np.ndarray, scale: float) -> None:
        assert self.basis is not None and self._inner is not None
        p64 = projection.astype(np.float64)
        coef = p64 @ self._basis64
        # orthonormal basis: ‖P − P·V·Vᵀ‖² = ‖P‖² − ‖P·V‖² (in float64: no rounding floor)
        energy = float(np.einsum("ij,ij->", p64, p64))
        kept = float(np.einsum("ij,ij->", coef, coef))
        self._lost += scale * scale * max(energy - kept, 0.0)
        self._energy += scale * scale * energy
        self._inner.add(index, coef.astype(np.float32), scale)

    def flush(self) -> None:
        """Back-project every queued projection."""
        if self._inner is not None:
            self._inner.flush()

    def replace(self, index: int, projection: np.ndarray, scale: float = 1.0) -> None:
        """Put a corrected projection ``index`` in place of the one added."""
        if not self.added[index]:
            raise ValueError(f"projection {index} was never added; it cannot be replaced")
        projection = np.asarray(projection, dtype=np.float32)
        self._expanded = None
        for k, (idx, _old, _s) in enumerate(self._early):
            if idx == index:
                self._early[k] = (index, projection, scale)
                return
        assert self._inner is not None
        coef = (projection.astype(np.float64) @ self._basis64).astype(np.float32)
        self._inner.replace(index, coef, scale)

    def set_axis(self, axis: float) -> bool:
        """Move the rotation axis to ``axis`` (bins); True if the volume was made again."""
        axis = check_axis(axis, self.n_t)
        if axis == self.axis:
            return False
        self.axis = axis
        self._expanded = None
        if self._inner is not None:
            self._inner.set_axis(axis)
        return True

    def result(self) -> np.ndarray:
        """The volume so far, (ny, nx, n_q) per mm: the r channels expanded on the basis.

        Before the basis exists (fewer than ``basis_rows`` projections), the projections
        so far are back-projected in full, and the basis is left to be made later.
        """
        if self._expanded is None:
            if self._inner is None or self.basis is None:
                full = IncrementalFBP(
                    self.angles, self.n_t, self.n_q, self.step_mm, self.batch, self.axis
                )
                for index, projection, scale in self._early:
                    full.add(index, projection, scale)
                self._expanded = full.result()
            else:
                small = self._inner.result()
                flat = small.reshape(-1, small.shape[2]) @ self.basis.T
                self._expanded = flat.reshape(self.n_t, self.n_t, self.n_q)
        return self._expanded

    def slice_at(self, iq: int) -> np.ndarray:
        """The volume so far at q bin ``iq`` (ny, nx): the r channels (queued projections
        included) on the basis's row ``iq``."""
        if not 0 <= iq < self.n_q:
            raise ValueError(f"q index {iq} is outside 0..{self.n_q - 1}")
        if self._expanded is not None:
            return np.array(self._expanded[:, :, iq])
        if self._inner is None or self.basis is None:  # the early rows, at this q only
            one = IncrementalFBP(self.angles, self.n_t, 1, self.step_mm, self.batch, self.axis)
            for index, projection, scale in self._early:
                one.add(index, projection[:, iq : iq + 1], scale)
            return np.array(one.result()[:, :, 0])
        small = self._inner.channels(slice(None))
        return small @ self.basis[iq]
