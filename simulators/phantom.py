"""The phantom sample: per-phase volume fraction and lattice parameter on a square grid.

File layout (also the ``ground_truth`` group of our NeXus files): one HDF5 group per
phase, named after a library phase, holding ``fraction`` (ny, nx) and ``lattice_a``
(ny, nx, Å; 0 for amorphous phases), and optionally ``strain`` (ny, nx: the microstrain
ε that broadens each line by 2εq) and ``size`` (ny, nx, Å: the crystallite size D that
broadens each line by 2πK/D; 0 for none) and ``domain`` (ny, nx, Å: the size of the
nanodomains that scatter at small angles, :mod:`..materials.saxs`; a phase without it
has no SAXS signal), plus a root dataset ``pixel_size`` in mm.
Grid convention: row index = y, column index = x, pixel centres at
``(i - (n-1)/2) * pixel_size`` from the rotation axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..materials.phases import LIBRARY, get_phase


class PhantomError(ValueError):
    """A phantom file or definition that cannot be used."""


@dataclass
class Phantom:
    """Phase maps on an n × n grid of ``pixel_size`` mm."""

    pixel_size: float
    fraction: dict[str, np.ndarray] = field(default_factory=dict)
    lattice_a: dict[str, np.ndarray] = field(default_factory=dict)
    strain: dict[str, np.ndarray] = field(default_factory=dict)  # ε per voxel
    size: dict[str, np.ndarray] = field(default_factory=dict)  # Å per voxel, 0: unbroadened
    domain: dict[str, np.ndarray] = field(default_factory=dict)  # Å per voxel (SAXS), 0: none

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.fraction.values())).shape

    def validate(self) -> None:
        if not self.fraction:
            raise PhantomError("phantom has no phases")
        if not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise PhantomError(f"phantom pixel_size {self.pixel_size} mm must be finite and > 0")
        shape = self.shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise PhantomError(f"phantom grid {shape} must be a square 2-D map")
        total = np.zeros(shape)
        for name, frac in self.fraction.items():
            phase = get_phase(name)
            lat = self.lattice_a[name]
            if frac.shape != shape or lat.shape != shape:
                raise PhantomError(
                    f"phase {name!r} maps have shapes {frac.shape} and {lat.shape}, expected "
                    f"{shape}"
                )
            for what, values in (("fraction", frac), ("lattice_a", lat)):
                if not np.isfinite(values).all():
                    raise PhantomError(f"phase {name!r} {what} has NaN or infinite values")
            for what, maps in self.extra_maps():
                m = maps.get(name)
                if m is None:
                    continue
                if m.shape != shape or not np.isfinite(m).all() or m.min() < 0:
                    raise PhantomError(
                        f"phase {name!r} {what} map must be finite and >= 0 on the {shape} grid"
                    )
            if frac.min() < 0:
                raise PhantomError(f"phase {name!r} has negative fraction {frac.min():.3g}")
            inside = frac > 0
            if phase.crystalline and inside.any() and not (lat[inside] > 0).all():
                raise PhantomError(
                    f"phase {name!r} lattice_a {lat[inside].min():.4g} Å where its fraction is "
                    "> 0: a crystalline phase needs a lattice parameter > 0 Å there"
                )
            total += frac
        if total.max() > 1 + 1e-6:
            raise PhantomError(f"phase fractions sum to {total.max():.3f} > 1 in some pixel")

    def extra_maps(self) -> tuple[tuple[str, dict[str, np.ndarray]], ...]:
        """The optional per-phase maps, by their name in the file."""
        return (("strain", self.strain), ("size", self.size), ("domain", self.domain))

    def save(self, path: str | Path) -> None:
        with h5py.File(path, "w") as f:
            write_group(f, self)

    @classmethod
    def load(cls, path: str | Path) -> Phantom:
        try:
            with h5py.File(path, "r") as f:
                return read_group(f)
        except OSError as exc:
            raise PhantomError(f"cannot read phantom file {path}: {exc}") from exc


def write_group(group: h5py.Group, phantom: Phantom) -> None:
    """Write the phantom maps into ``group`` (file root or ``/entry/ground_truth``)."""
    ds = group.create_dataset("pixel_size", data=phantom.pixel_size)
    ds.attrs["units"] = "mm"
    for name, frac in phantom.fraction.items():
        g = group.create_group(name)
        g.attrs["NX_class"] = "NXcollection"
        g.attrs["name"] = name
        g.create_dataset("name", data=name)
        g.create_dataset("fraction", data=frac.astype(np.float32))
        lat = g.create_dataset("lattice_a", data=phantom.lattice_a[name].astype(np.float32))
        lat.attrs["units"] = "angstrom"
        for what, maps in phantom.extra_maps():
            if name in maps:
                ds = g.create_dataset(what, data=maps[name].astype(np.float32))
                if what != "strain":
                    ds.attrs["units"] = "angstrom"


def read_group(group: h5py.Group) -> Phantom:
    """Read a phantom written by :func:`write_group` (or by hand in the same layout)."""
    if "pixel_size" in group:
        pixel = float(group["pixel_size"][()])
    elif "pixel_size" in group.attrs:
        pixel = float(group.attrs["pixel_size"])
    else:
        raise PhantomError(f"phantom {group.file.filename} has no pixel_size (mm)")
    ph = Phantom(pixel)
    for name, g in group.items():
        if not isinstance(g, h5py.Group):
            continue
        if name not in LIBRARY:
            raise PhantomError(
                f"phantom group {name!r} is not a library phase ({', '.join(LIBRARY)})"
            )
        if "fraction" not in g:
            raise PhantomError(f"phantom phase {name!r} has no 'fraction' map")
        ph.fraction[name] = np.asarray(g["fraction"], dtype=float)
        lat = g["lattice_a"][()] if "lattice_a" in g else np.zeros_like(ph.fraction[name])
        ph.lattice_a[name] = np.asarray(lat, dtype=float)
        for what, maps in ph.extra_maps():
            if what in g:
                maps[name] = np.asarray(g[what], dtype=float)
    ph.validate()
    return ph


def _disc(shape: tuple[int, int], pixel: float, cx: float, cy: float, r: float, ss: int = 4):
    """Area fraction of each pixel inside a disc (supersampled ``ss``×``ss``)."""
    n = shape[0]
    sub = (np.arange(n * ss) + 0.5) / ss - 0.5 - (n - 1) / 2
    yy, xx = np.meshgrid(sub * pixel, sub * pixel, indexing="ij")
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r
    return inside.reshape(n, ss, n, ss).mean(axis=(1, 3)), np.hypot(xx - cx, yy - cy).reshape(
        n, ss, n, ss
    ).mean(axis=(1, 3))


def default_phantom(n: int = 64, pixel_size: float = 0.02, seed: int = 7) -> Phantom:
    """A coin-cell-like cross-section: PEEK holder ring, LiMn2O4 particles, an Al strip.

    Particles have individual lattice parameters (8.205–8.245 Å) with a slightly
    delithiated (smaller-a) surface; some carry a thin rock-salt LiMnO2 shell, some a
    Li0.5Mn2O4 core, both minor (fraction < 0.5). Electrolyte fills the pores.
    """
    rng = np.random.default_rng(seed)
    shape = (n, n)
    half = (n - 1) / 2 * pixel_size
    r_out, r_in = 0.97 * half, 0.80 * half
    ring = _disc(shape, pixel_size, 0, 0, r_out)[0] - _disc(shape, pixel_size, 0, 0, r_in)[0]
    frac = {k: np.zeros(shape) for k in ("LiMn2O4", "Li0.5Mn2O4", "LiMnO2", "Al", "PEEK")}
    lat = {k: np.zeros(shape) for k in frac}
    frac["PEEK"] = np.clip(ring, 0, 1)
    # Al current-collector strip along x, near the bottom of the cell
    ys = (np.arange(n) - (n - 1) / 2) * pixel_size
    strip_y = -0.55 * r_in
    rows = np.clip(1 - np.abs(ys - strip_y) / (0.05 * r_in + pixel_size / 2), 0, 1)[:, None]
    cols = (np.abs(ys) < 0.6 * r_in)[None, :]
    frac["Al"] = np.where(rows * cols > 0.5, 1.0, 0.0)
    lat["Al"][frac["Al"] > 0] = 4.0495
    placed: list[tuple[float, float, float]] = []
    tries = 0
    while len(placed) < 9 and tries < 2000:
        tries += 1
        r = rng.uniform(0.10, 0.17) * r_in
        cx, cy = rng.uniform(-1, 1, 2) * (r_in - r - pixel_size)
        if np.hypot(cx, cy) > r_in - r - pixel_size or cy - r < strip_y + 0.12 * r_in:
            continue
        if any(np.hypot(cx - x, cy - y) < r + rr + 1.5 * pixel_size for x, y, rr in placed):
            continue
        placed.append((cx, cy, r))
    occupied = frac["Al"] + frac["PEEK"]
    for k, (cx, cy, r) in enumerate(placed):
        disc, dist = _disc(shape, pixel_size, cx, cy, r)
        disc = np.minimum(disc, 1 - occupied)
        a_core = 8.245 - 0.005 * k
        a_map = a_core - 0.012 * np.clip(dist / r, 0, 1) ** 2
        spinel = disc.copy()
        if k % 3 == 1:  # thin rock-salt shell
            shell = disc * (dist > 0.75 * r) * 0.35
            frac["LiMnO2"] += shell
            lat["LiMnO2"] = np.where(shell > 0, 4.16, lat["LiMnO2"])
            spinel -= shell
        if k % 3 == 2:  # half-delithiated core
            core = disc * (dist < 0.5 * r) * 0.4
            frac["Li0.5Mn2O4"] += core
            lat["Li0.5Mn2O4"] = np.where(core > 0, 8.145, lat["Li0.5Mn2O4"])
            spinel -= core
        frac["LiMn2O4"] += spinel
        lat["LiMn2O4"] = np.where(spinel > 0, a_map, lat["LiMn2O4"])
        occupied = occupied + disc
    inner = _disc(shape, pixel_size, 0, 0, r_in)[0]
    frac["electrolyte"] = np.clip(0.4 * inner - 0.4 * occupied, 0, 0.4)
    lat["electrolyte"] = np.zeros(shape)
    ph = Phantom(pixel_size, frac, lat)
    ph.validate()
    return ph


DOMAIN_SIZES = (60.0, 90.0, 120.0, 160.0, 200.0)  # Å: nanodomains of each particle (SAXS)


def domain_phantom(n: int = 32, pixel_size: float = 0.04) -> Phantom:
    """A cell cross-section for SAXS/WAXS-CT: five large spinel particles, each with its
    own nanodomain size (``DOMAIN_SIZES``), in electrolyte, inside a PEEK holder ring,
    above an Al strip; every feature at least 0.1 mm across, so that scans at 80 µm
    steps resolve it (seed ``003``: d* maps tell the particles apart)."""
    shape = (n, n)
    half = (n - 1) / 2 * pixel_size
    r_out, r_in = 0.97 * half, 0.78 * half
    ring = _disc(shape, pixel_size, 0, 0, r_out)[0] - _disc(shape, pixel_size, 0, 0, r_in)[0]
    frac = {"PEEK": np.clip(ring, 0, 1)}
    ys = (np.arange(n) - (n - 1) / 2) * pixel_size
    strip = (np.abs(ys + 0.55 * r_in) <= 0.05)[:, None] & (np.abs(ys) < 0.6 * r_in)[None, :]
    frac["Al"] = strip.astype(float)
    frac["LiMn2O4"] = np.zeros(shape)
    domain = np.zeros(shape)
    r = 0.27 * r_in
    centres = ((-0.5, 0.55), (0.25, 0.6), (-0.6, -0.1), (0.0, 0.0), (0.62, 0.05))
    occupied = frac["Al"] + frac["PEEK"]
    for (u, v), d in zip(centres, DOMAIN_SIZES, strict=True):
        disc = np.minimum(_disc(shape, pixel_size, u * r_in, v * r_in, r)[0], 1 - occupied)
        frac["LiMn2O4"] += disc
        domain = np.where(disc > 0, d, domain)
        occupied = occupied + disc
    lat = {
        "PEEK": np.zeros(shape),
        "Al": np.where(strip, 4.0495, 0.0),
        "LiMn2O4": np.where(frac["LiMn2O4"] > 0, 8.24, 0.0),
    }
    inner = _disc(shape, pixel_size, 0, 0, r_in)[0]
    frac["electrolyte"] = np.clip(0.4 * inner - 0.4 * occupied, 0, 0.4)
    lat["electrolyte"] = np.zeros(shape)
    ph = Phantom(pixel_size, frac, lat, domain={"LiMn2O4": domain})
    ph.validate()
    return ph
