"""How the cathode's lattice follows the cell's lithium content (LixMn2O4).

The cubic spinel's lattice parameter runs from ≈ 8.03 Å at x ≈ 0 to ≈ 8.25 Å at x = 1
(Finegan et al., seed 001), through two two-phase windows (8.076 ↔ 8.145 Å and
8.183 ↔ 8.205 Å): inside a window a particle holds both end members, in proportions
given by the lever rule. Each voxel keeps its own offset from the reference curve (the
phantom as built, at ``x_ref``), so particles and their surfaces stay different.
"""

from __future__ import annotations

import numpy as np

from .phantom import Phantom

# (x, a) nodes of the single-phase branches; the gaps between 0.20–0.45 and 0.55–0.65
# are the two-phase windows
NODES_X = np.array([0.0, 0.20, 0.45, 0.55, 0.65, 1.0])
NODES_A = np.array([8.030, 8.076, 8.145, 8.183, 8.205, 8.250])
WINDOWS = ((0.20, 0.45), (0.55, 0.65))
RICH, POOR = "LiMn2O4", "Li0.2Mn2O4"  # library phases holding the two members


def spinel_state(x: float) -> tuple[float, float, float]:
    """(fraction of the Li-rich member, its a, the Li-poor member's a) at content ``x``.

    Outside the two-phase windows the fraction is 1 and the two lattice parameters are
    equal. ``x`` is clipped to [0, 1] (the 3 V tetragonal region is not modelled here).
    """
    x = float(np.clip(x, 0.0, 1.0))
    for lo, hi in WINDOWS:
        if lo < x < hi:
            a_lo, a_hi = np.interp([lo, hi], NODES_X, NODES_A)
            return (x - lo) / (hi - lo), float(a_hi), float(a_lo)
    a = float(np.interp(x, NODES_X, NODES_A))
    return 1.0, a, a


def lithiate(base: Phantom, x: float, x_ref: float) -> Phantom:
    """The phantom at lithium content ``x``; ``base`` is the cell as built, at ``x_ref``.

    Only the spinel (``LiMn2O4`` in ``base``) changes; its fraction is split between the
    Li-rich (``LiMn2O4``) and Li-poor (``Li0.2Mn2O4``) members, whose lattice parameters
    carry each voxel's offset from the reference curve.
    """
    out = Phantom(
        base.pixel_size,
        {k: v.copy() for k, v in base.fraction.items()},
        {k: v.copy() for k, v in base.lattice_a.items()},
        {k: v.copy() for k, v in base.strain.items()},
        {k: v.copy() for k, v in base.size.items()},
        {k: v.copy() for k, v in base.domain.items()},
    )
    if RICH not in base.fraction:
        return out
    spinel = base.fraction[RICH]
    present = spinel > 0
    _, a_ref, _ = spinel_state(x_ref)
    offset = np.where(present, base.lattice_a[RICH] - a_ref, 0.0)
    f_rich, a_rich, a_poor = spinel_state(x)
    out.fraction[RICH] = spinel * f_rich
    out.lattice_a[RICH] = np.where(present, a_rich + offset, 0.0)
    poor = out.fraction.get(POOR, np.zeros_like(spinel)) + spinel * (1 - f_rich)
    out.fraction[POOR] = poor
    lat_poor = out.lattice_a.get(POOR, np.zeros_like(spinel))
    out.lattice_a[POOR] = np.where(present & (f_rich < 1), a_poor + offset, lat_poor)
    for maps in (out.strain, out.size, out.domain):  # the Li-poor member: the same grains
        if RICH in maps:
            maps[POOR] = np.where(present, maps[RICH], maps.get(POOR, np.zeros_like(spinel)))
    out.validate()
    return out
