"""The model of a lattice fit: which lines of which phases, in which q windows.

A phase's lines come from the phase library; phases of one crystal structure form a
family (members of a solid solution) whose lattice range spans all of them. Each chosen
line gets a window wide enough for its phase's lattice range, ``MARGIN`` FWHM of
background each side; overlapping windows merge, and every listed phase's line inside a
window is in the model (:class:`.peak_kernel.Layout`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...materials.phases import LIBRARY, get_phase
from .peak_kernel import Layout

MARGIN = 2.0  # FWHM of background each side of a window


class LatticeError(ValueError):
    """Lattice maps that cannot be made: names the value and the limit."""


@dataclass(frozen=True)
class Line:
    """One reflection of a phase: ``n`` = h² + k² + l², its q at ``a0``, its height."""

    phase: str
    n: int
    q0: float
    height: float

    def q(self, a: float) -> float:
        """The line's q (1/Å) at lattice parameter ``a``."""
        return 2 * math.pi * math.sqrt(self.n) / a


def lines_of(phase: str, q_range: tuple[float, float]) -> list[Line]:
    """The crystalline phase's lines inside ``q_range``, strongest first."""
    p = get_phase(phase)
    if not p.crystalline:
        raise LatticeError(f"phase {phase!r} is amorphous: it has no lattice parameter")
    n, q, height = p.line_table()
    found = [
        Line(phase, round(float(nn)), float(qq), float(h))
        for nn, qq, h in zip(n, q, height, strict=True)
        if q_range[0] < qq < q_range[1]
    ]
    return sorted(found, key=lambda line: -line.height)


def structure(name: str) -> tuple[tuple[str, ...], tuple[tuple[float, float, float], ...]]:
    """A phase's crystal structure: space-group generators and site positions."""
    p = get_phase(name)
    return p.generators, tuple(site.position for site in p.sites)


def structure_families(phases: list[str]) -> list[list[str]]:
    """The phases grouped by crystal structure (space group and sites: LiMn2O4 and
    Li0.5Mn2O4 are one family, members of a solid solution), in the order given."""
    families: dict[tuple, list[str]] = {}
    for name in phases:
        families.setdefault(structure(name), []).append(name)
    return list(families.values())


def family_range(family: list[str], spread: float) -> tuple[float, float]:
    """The lattice range a family's members may take: the whole solid solution, from
    the smallest ``a0`` of every library phase of that structure less ``spread`` to the
    largest plus ``spread`` (relative). LiMn2O4 alone may go down to Li0.2Mn2O4's."""
    key = structure(family[0])
    a0 = [p.a0 for p in LIBRARY.values() if p.crystalline and structure(p.name) == key]
    return min(a0) * (1 - spread), max(a0) * (1 + spread)


@dataclass
class LatticeModel:
    """The fit's layout and where each kind of parameter starts."""

    layout: Layout
    lines: list[Line]
    points: np.ndarray
    order: np.ndarray  # indices of the grid points, window by window

    @property
    def at_area(self) -> int:
        return 2 * self.layout.middle.size

    @property
    def at_group(self) -> int:
        return self.at_area + len(self.lines)

    @property
    def at_width(self) -> int:
        return self.at_group + self.layout.n_groups


def build_model(
    q: np.ndarray,
    phases: list[str],
    ranges: dict[str, tuple[float, float]],
    fwhm: float,
    max_lines: int,
) -> LatticeModel:
    q_range = (float(q[0]) + 4 * fwhm, float(q[-1]) - 4 * fwhm)
    chosen = []
    for p in phases:
        mine = lines_of(p, q_range)[:max_lines]
        if not mine:
            raise LatticeError(
                f"phase {p!r} has no line inside q {q_range[0]:.3f}..{q_range[1]:.3f} 1/Å"
            )
        chosen += mine
    spans = sorted(
        (ln.q(ranges[ln.phase][1]) - MARGIN * fwhm, ln.q(ranges[ln.phase][0]) + MARGIN * fwhm)
        for ln in chosen
    )
    windows = [list(spans[0])]
    for lo, hi in spans[1:]:
        if lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    every = [ln for p in phases for ln in lines_of(p, (float(q[0]), float(q[-1])))]
    lines = [ln for ln in every if any(lo < ln.q0 < hi for lo, hi in windows)]
    masks = [(q >= lo) & (q <= hi) for lo, hi in windows]
    order = np.concatenate([np.nonzero(m)[0] for m in masks])
    line_window = np.array(
        [next(w for w, (lo, hi) in enumerate(windows) if lo < ln.q0 < hi) for ln in lines]
    )
    layout = Layout(
        window=np.concatenate([np.full(int(m.sum()), w) for w, m in enumerate(masks)]),
        middle=np.array([0.5 * (lo + hi) for lo, hi in windows]),
        line_window=line_window,
        line_group=np.array([phases.index(ln.phase) for ln in lines]),
        line_root=np.array([2 * math.pi * math.sqrt(ln.n) for ln in lines]),
        line_width=line_window,
        n_groups=len(phases),
        n_widths=len(windows),
        pseudo_voigt=False,
    )
    return LatticeModel(layout, lines, q[order], order)
