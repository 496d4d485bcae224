"""What ``operando demo`` runs: its sizes, its phantom and its protocol's plan.

The scans are fly scans (:func:`..plans.fly.fly_xrdct`) unless the sample's absorption
is simulated: a transmission diode read at every point needs step scans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..plans.holotomo import HolotomoParameters, seed_holotomo_protocol
from ..plans.operando import MODES, minimal_operando, xrdct
from ..plans.tomo import tomo_angles, tomo_scan
from ..simulators.artefacts import Artefacts
from ..simulators.phantom import Phantom, PhantomError, default_phantom
from .beamline import Beamline
from .errors import ConfigError

CAPACITY_MAH = 0.05
ONE_C = CAPACITY_MAH * 3.6 / 3600  # A
PROTOCOLS = ("minimal", "holotomo")
SCANS = ("xrdct", "tomo")  # the protocol's scans: pencil-beam XRD-CT, or full-field
# full-field scans by size: projections over 360°, flats, darks
TOMO_SCANS = {"micro": (36, 4, 3), "tiny": (90, 10, 11), "small": (360, 10, 11),
              "medium": (720, 20, 21)}  # fmt: skip
# the cell's state of charge (its lithium content) as each protocol starts
INITIAL_X = {"minimal": 0.98, "holotomo": 0.6}


@dataclass(frozen=True)
class Size:
    n: int  # translations (= phantom grid) and angles
    n_angles: int
    pixel_mm: float
    exposure: float


SIZES = {
    "micro": Size(8, 6, 0.15, 0.004),  # a fly row within the x motor's VMAX
    "tiny": Size(16, 12, 0.075, 0.002),
    "small": Size(40, 40, 0.03, 0.005),
    "medium": Size(64, 64, 0.02, 0.005),
}


def prepare_phantom(out: Path, size: Size, phantom_file: Path | None) -> tuple[Path, Phantom]:
    """Write the phantom the IOC renders from (and the processor copies as ground truth)."""
    try:
        ph = Phantom.load(phantom_file) if phantom_file else default_phantom(size.n, size.pixel_mm)
    except PhantomError as exc:
        raise ConfigError(str(exc)) from exc
    path = out / "phantom.h5"
    ph.save(path)
    return path, ph


def scan_mode(mode: str | None, art: Artefacts) -> str:
    """The demo's XRD-CT scan mode: ``mode`` if given, else fly (step with absorption,
    whose transmission diode is read at every point); a fly scan with absorption is
    refused."""
    if mode is not None and mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    if art.absorption:
        if mode == "fly":
            raise ConfigError(
                "--mode fly with --artefacts absorption: the transmission diode is read at "
                "every point, which only step scans do; use --mode step"
            )
        return "step"
    return mode or "fly"


def demo_plan(
    bl: Beamline,
    ph: Phantom,
    size: Size,
    phantom_file: Path | None,
    phantom_path: Path,
    poni: Path,
    protocol: str,
    extra: int = 0,
    scan_kind: str = "xrdct",
    mode: str = "step",
) -> Any:
    """The demo's protocol on the built beamline; ``extra`` translation steps each side;
    ``scan_kind`` ``tomo``: full-field scans (:func:`..plans.tomo.tomo_scan`)."""
    n = ph.shape[0]
    step = ph.pixel_size
    translations = (np.arange(n + 2 * extra) - (n + 2 * extra - 1) / 2) * step
    n_angles = size.n_angles if phantom_file is None else n
    angles = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    sample = {
        "name": "simulated LiMn2O4 | Li cell",
        "phantom": str(phantom_path),
        "capacity_mAh": CAPACITY_MAH,
        "lithium_x0": INITIAL_X[protocol],
    }
    if protocol == "minimal":
        return minimal_operando(
            bl.pstat,
            bl.det,
            bl.stage,
            bl.diode,
            angles.tolist(),
            translations.tolist(),
            poni_file=str(poni),
            current=ONE_C / 3,
            until_voltage=4.3,
            cc_time=1800.0,
            rest_time=120.0,
            ocv_before_scan=60.0,
            resume_time=600.0,
            sample=sample,
            transmission=bl.diode_t,
            mode=mode,
        )

    def scan(md: dict) -> Any:
        if scan_kind == "tomo" and bl.camera is not None:
            n_proj, n_flats, n_darks = TOMO_SCANS[size_name(size)]
            return tomo_scan(
                bl.camera, bl.stage, bl.shutter, bl.diode, tomo_angles(n_proj, 360.0),
                n_flats=n_flats, n_darks=n_darks, sample=sample, md=md,
            )  # fmt: skip
        return xrdct(
            mode, bl.det, bl.stage, bl.diode, angles.tolist(), translations.tolist(),
            poni_file=str(poni), pstat=bl.pstat, sample=sample, transmission=bl.diode_t, md=md,
        )  # fmt: skip

    params = HolotomoParameters(one_c=ONE_C, n_max=2, v_min=4.0, period=3600.0)
    return seed_holotomo_protocol(bl.pstat, scan, params)


def size_name(size: Size) -> str:
    return next(k for k, v in SIZES.items() if v == size)


def margin(art: Artefacts, ph: Phantom) -> int:
    """Translation steps to scan beyond the sample on each side: none for an ideal sample;
    with artefacts, 3 of air (for the air pattern and empty row ends) plus the axis offset."""
    if not art.any:
        return 0
    return 3 + math.ceil(abs(art.axis_offset) / ph.pixel_size + 3 * art.jitter / ph.pixel_size)


def corrections_for(art: Artefacts) -> str:
    """The processor's corrections for these artefacts, as a beamline would set them."""
    names = ["normalise"]
    if art.jitter:
        names.append("jitter")
    if art.air:
        names.append("air")
    if art.absorption:
        names.append("transmission")
    names.append("rotation_centre")
    return ",".join(names)
