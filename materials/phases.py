"""The built-in phase library and each phase's scattering per solid angle, I(q).

Crystalline phases are cubic; their lines come from the crystal structure
(:func:`crystal.powder_lines`). Per unit volume of phase, the power diffracted into a
Debye–Scherrer cone is ∝ Σ|F|² λ³ / (V_c² sin θ); spread over the cone's solid angle
and written per unit q this is ∝ Σ|F|² / (V_c² q²), which is what :meth:`Phase.profile`
returns (Gaussian line shape of width ``sigma_q``). Amorphous phases are sums of broad
Gaussian halos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .crystal import F_CENTRING, Site, powder_lines

FD3M = (
    *F_CENTRING,
    "-x+3/4,-y+1/4,z+1/2",
    "-x+1/4,y+1/2,-z+3/4",
    "z,x,y",
    "y+3/4,x+1/4,-z+1/2",
    "-x,-y,-z",
)
FM3M = (*F_CENTRING, "-y,x,z", "z,x,y", "-x,-y,-z")
Q_MAX = 8.0  # Å⁻¹, beyond any detector we simulate
SIGMA_Q = 0.010  # Å⁻¹, instrumental + size broadening of every line
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
K_SCHERRER = 0.9  # the Scherrer constant of the size broadening 2πK/D


@dataclass(frozen=True)
class Phase:
    """A phase of the library: cubic crystal (lines from structure) or amorphous (halos)."""

    name: str
    a0: float = 0.0  # Å; 0 for amorphous
    generators: tuple[str, ...] = ()
    sites: tuple[Site, ...] = ()
    b_iso: float = 0.5  # Å²
    halos: tuple[tuple[float, float, float], ...] = ()  # (q centre, sigma, height)
    scale: float = 1.0
    description: str = field(default="", compare=False)

    @property
    def crystalline(self) -> bool:
        return not self.halos

    @cached_property
    def _lines(self) -> tuple[np.ndarray, np.ndarray]:
        n, f2 = powder_lines(self.generators, self.sites, self.a0, self.b_iso, Q_MAX)
        v_cell = self.a0**3
        return n, f2 / v_cell**2

    def line_positions(self, a: float | None = None) -> np.ndarray:
        """q (Å⁻¹) of each line for lattice parameter ``a`` (default ``a0``)."""
        n, _ = self._lines
        return 2 * np.pi * np.sqrt(n) / (a or self.a0)

    def line_table(self, a: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every line: (h²+k²+l², q in 1/Å at ``a`` (default a0), peak height in
        :meth:`profile`'s units per unit fraction)."""
        if not self.crystalline:
            raise ValueError(f"phase {self.name!r} is amorphous: it has no lines")
        n, w = self._lines
        q = self.line_positions(a)
        return n, q, self.scale * w / q**2 / (SIGMA_Q * np.sqrt(2 * np.pi))

    def strongest_line(self, a: float | None = None) -> float:
        """q of the line with the highest peak in :meth:`profile` (Å⁻¹)."""
        if not self.crystalline:
            return max(self.halos, key=lambda h: h[2])[0]
        q = self.line_positions(a)
        _, w = self._lines
        return float(q[np.argmax(w / q**2)])

    def profile(
        self,
        q: np.ndarray,
        a: np.ndarray | float | None = None,
        strain: np.ndarray | float | None = None,
        size: np.ndarray | float | None = None,
    ) -> np.ndarray:
        """Scattering per solid angle on grid ``q`` for one or many lattice parameters.

        ``a`` may be an array (one pattern per value); returns shape ``a.shape + q.shape``.
        ``strain`` (ε) and ``size`` (D, Å; 0 for none), broadcast against ``a``, broaden
        each line of a crystalline phase by ``2εq + 2πK/D`` (FWHM in q, Williamson–Hall),
        added in quadrature to the instrument's; each line keeps its area.
        """
        if not self.crystalline:
            out = sum(h * np.exp(-0.5 * ((q - c) / s) ** 2) for c, s, h in self.halos)
            base = self.scale * np.asarray(out)
            return np.broadcast_to(base, np.shape(a) + q.shape).copy() if a is not None else base
        a_arr = np.atleast_1d(np.asarray(self.a0 if a is None else a, dtype=float)).ravel()
        shape = np.shape(np.asarray(self.a0 if a is None else a))
        eps = np.broadcast_to(np.asarray(0.0 if strain is None else strain, float), shape).ravel()
        d = np.broadcast_to(np.asarray(0.0 if size is None else size, float), shape).ravel()
        with np.errstate(divide="ignore"):
            size_term = np.where(d > 0, 2 * np.pi * K_SCHERRER / d, 0.0)
        n, w = self._lines
        out = np.zeros((a_arr.size, q.size))
        dq = (q[-1] - q[0]) / max(q.size - 1, 1)
        if q.size > 1 and not np.allclose(np.diff(q), dq, rtol=1e-6, atol=1e-12):
            raise ValueError("Phase.profile needs a uniform q grid")
        rows = np.arange(a_arr.size)[:, None]
        broadened = bool(np.any(eps > 0) or np.any(size_term > 0))
        for nk, wk in zip(n, w, strict=True):
            qk = 2 * np.pi * np.sqrt(nk) / a_arr
            if broadened:
                sample = 2 * eps * qk + size_term
                sigma = np.sqrt(SIGMA_Q**2 + (sample / FWHM_PER_SIGMA) ** 2)
            else:
                sigma = np.full(a_arr.size, SIGMA_Q)
            half = int(np.ceil(6 * sigma.max() / dq)) + 1
            offs = np.arange(-half, half + 1)
            idx = np.rint((qk - q[0]) / dq).astype(int)[:, None] + offs
            ok = (idx >= 0) & (idx < q.size)
            idx_c = np.clip(idx, 0, q.size - 1)
            s = sigma[:, None]
            g = (
                np.exp(-0.5 * ((q[idx_c] - qk[:, None]) / s) ** 2)
                / (s * np.sqrt(2 * np.pi))
                * wk
                / qk[:, None] ** 2
            )
            np.add.at(out, (np.broadcast_to(rows, idx.shape)[ok], idx_c[ok]), g[ok])
        out = out.reshape(np.shape(a) + q.shape) if a is not None else out.reshape(q.shape)
        return out * self.scale


def _spinel(name: str, a0: float, li: float, mn4: float, desc: str) -> Phase:
    sites = (
        Site((1 / 8, 1 / 8, 1 / 8), (("Li1+", li),)),
        Site((0.5, 0.5, 0.5), (("Mn3+", 1 - mn4), ("Mn4+", mn4))),
        Site((0.2625, 0.2625, 0.2625), (("O2-", 1.0),)),
    )
    return Phase(name, a0, FD3M, sites, 0.6, description=desc)


LIBRARY: dict[str, Phase] = {
    p.name: p
    for p in (
        _spinel("LiMn2O4", 8.245, 1.0, 0.5, "spinel Fd-3m, fully lithiated"),
        _spinel("Li0.5Mn2O4", 8.145, 0.5, 0.75, "spinel Fd-3m, half delithiated"),
        _spinel(
            "Li0.2Mn2O4",
            8.076,
            0.2,
            0.9,
            "spinel Fd-3m, Li-poor member of a two-phase window (a set per voxel)",
        ),
        Phase(
            "LiMnO2",
            4.16,
            FM3M,
            (
                Site((0, 0, 0), (("Li1+", 0.5), ("Mn3+", 0.5))),
                Site((0.5, 0.5, 0.5), (("O2-", 1.0),)),
            ),
            0.8,
            description="disordered rock salt Fm-3m",
        ),
        Phase("Al", 4.0495, FM3M, (Site((0, 0, 0), (("Al", 1.0),)),), 0.8, description="Fm-3m"),
        Phase(
            "CeO2",
            5.4113,
            FM3M,
            (Site((0, 0, 0), (("Ce4+", 1.0),)), Site((0.25, 0.25, 0.25), (("O2-", 1.0),))),
            0.3,
            description="fluorite Fm-3m, the line-shape standard (NIST SRM 674b)",
        ),
        Phase(
            "PEEK",
            halos=((1.33, 0.12, 1.0), (1.62, 0.10, 0.55), (2.05, 0.22, 0.35), (3.2, 0.5, 0.12)),
            scale=0.4,
            description="amorphous PEEK-like cell holder",
        ),
        Phase(
            "electrolyte",
            halos=((1.55, 0.35, 1.0), (3.0, 0.6, 0.25)),
            scale=0.12,
            description="amorphous liquid electrolyte / separator",
        ),
    )
}


def get_phase(name: str) -> Phase:
    """Look a phase up by name; the error lists the library."""
    try:
        return LIBRARY[name]
    except KeyError:
        raise KeyError(f"phase {name!r} is not in the library ({', '.join(LIBRARY)})") from None


def feature_window(
    name: str, others: dict[str, float | None], clearance: float = 0.1
) -> tuple[float, float, bool]:
    """Where to map phase ``name``: (q centre, half width, subtract background).

    Crystalline: its strongest line (lattice parameter ``others[name]`` or a0), ±0.03 Å⁻¹,
    background-subtracted. Amorphous: its strongest halo whose ±0.06 Å⁻¹ window keeps
    ``clearance`` from every strong line (≥ 5 % of that phase's strongest) of the other
    phases in ``others`` (name → lattice parameter or None).
    """
    phase = get_phase(name)
    if phase.crystalline:
        return phase.strongest_line(others.get(name)), 0.03, True
    lines = []
    for other, a in others.items():
        ph = get_phase(other)
        if other == name or not ph.crystalline:
            continue
        q = ph.line_positions(a)
        _, w = ph._lines
        strength = w / q**2
        lines.extend(q[strength >= 0.05 * strength.max()])
    for centre, _sigma, _h in sorted(phase.halos, key=lambda h: -h[2]):
        if all(abs(centre - line) > 0.06 + clearance for line in lines):
            return centre, 0.06, False
    raise ValueError(f"every halo of {name} overlaps a line of {', '.join(others)}")
