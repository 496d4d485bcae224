"""Operando protocols: electrochemistry and XRD-CT scans joined, the cell kept safe.

Runs of one experiment share ``experiment_id`` in their start documents, so the live
processor can put the whole V/I log into every scan file.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator
from ophyd import Signal

from ..devices.detector import FrameDetector
from ..devices.potentiostat import ConstantCurrent, Potentiostat
from ..devices.stage import TomoStage
from .electrochemistry import (
    constant_current,
    end_hold,
    ocv,
    open_circuit_on_exit,
    recorded,
    start_ocv_hold,
)
from .fly import check_fly, fly_xrdct
from .protocol_log import ProtocolLog, transition
from .xrdct import ScanLimitError, check_limits, xrdct_scan


def electrochemistry_run(
    pstat: Potentiostat, steps: MsgGenerator[Any], *, md: dict[str, Any]
) -> MsgGenerator[Any]:
    """Record electrochemical ``steps`` as a run of their own (``electrochemistry`` stream).

    Returns what ``steps`` returns (bluesky's run wrapper itself returns the run uid).
    """
    result: list[Any] = []

    @bpp.run_decorator(md={"plan_name": "electrochemistry", **md})
    def inner() -> MsgGenerator[None]:
        result.append((yield from recorded(pstat, lambda: steps)))

    yield from inner()
    return result[0] if result else None


MODES = ("step", "fly")  # how an XRD-CT scan moves: point by point, or rows on the fly


def check_mode(mode: str, transmission: Signal | None = None) -> None:
    """Refuse an unknown scan ``mode``, or a ``transmission`` diode in a fly scan."""
    if mode not in MODES:
        raise ScanLimitError(f"scan mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "fly" and transmission is not None:
        raise ScanLimitError(
            f"transmission {transmission.name}: a fly scan reads no diode per point; "
            "use mode='step'"
        )


def xrdct(
    mode: str,
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    angles: Sequence[float],
    translations: Sequence[float],
    *,
    transmission: Signal | None = None,
    **kwargs: Any,
) -> MsgGenerator[None]:
    """An XRD-CT scan in ``mode``: ``step`` (:func:`.xrdct.xrdct_scan`) or ``fly``
    (:func:`.fly.fly_xrdct`, which reads no ``transmission`` diode); ``kwargs`` as both
    take them (``poni_file``, ``pstat``, ``sample``, ``md``)."""
    check_mode(mode, transmission)
    if mode == "fly":
        return fly_xrdct(det, stage, monitor, angles, translations, **kwargs)
    return xrdct_scan(
        det, stage, monitor, angles, translations, transmission=transmission, **kwargs
    )


def minimal_operando(
    pstat: Potentiostat,
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    angles: Sequence[float],
    translations: Sequence[float],
    *,
    poni_file: str,
    current: float,
    until_voltage: float,
    cc_time: float,
    rest_time: float = 60.0,
    ocv_before_scan: float = 60.0,
    resume_time: float = 600.0,
    sample: dict[str, Any] | None = None,
    transmission: Signal | None = None,
    md: dict[str, Any] | None = None,
    mode: str = "step",
) -> MsgGenerator[dict[str, str]]:
    """OCV rest → XRD-CT → constant current → OCV → XRD-CT → resume constant current.

    Two scans of the same cell at two states of charge, each at open circuit; every
    change of state is recorded in the ``transitions`` stream.

    Parameters
    ----------
    pstat, det, stage, monitor
        Potentiostat, streaming detector, tomography stage, beam monitor.
    angles, translations
        The XRD-CT grid (deg, mm).
    poni_file
        Detector geometry.
    current, until_voltage, cc_time
        The constant-current step: A (+ = charge), its voltage limit (V), its timeout (s).
    rest_time, ocv_before_scan, resume_time
        Initial OCV rest, OCV before the second scan, and the resumed CC step (s).
    sample, md
        Sample description; extra metadata for every run.
    transmission
        A transmitted-beam diode read at every scan point, if any (step scans only).
    mode
        ``step`` (:func:`.xrdct.xrdct_scan`) or ``fly`` (:func:`.fly.fly_xrdct`: rows
        swept with the detector on the stage's position-compare pulses).

    Returns
    -------
    Why each step ended, by step name.
    """
    check_limits(stage, angles, translations)
    check_mode(mode, transmission)
    if mode == "fly":
        check_fly(stage, translations, float(det.exposure.get()))
    pstat.check_step(ConstantCurrent(current, until_voltage, cc_time))
    pstat.check_step(ConstantCurrent(current, until_voltage, resume_time))
    experiment = {"experiment_id": uuid.uuid4().hex, "protocol": "minimal_operando", **(md or {})}
    reasons: dict[str, str] = {}
    log = ProtocolLog()

    def rest() -> MsgGenerator[None]:
        yield from transition(log, pstat, "ocv", "start", 0)
        reasons["rest"] = yield from ocv(pstat, rest_time)
        yield from transition(log, pstat, "scan", "initial state", 1)

    def charge() -> MsgGenerator[None]:
        yield from transition(log, pstat, "cc_charge", "after scan 1", 1)
        reasons["charge"] = yield from constant_current(
            pstat, current, until_voltage=until_voltage, timeout=cc_time
        )
        yield from transition(log, pstat, "pre_scan_ocv", reasons["charge"], 1)
        reasons["ocv_before_scan"] = yield from ocv(pstat, ocv_before_scan)
        yield from transition(log, pstat, "scan", reasons["charge"], 2)

    def resume() -> MsgGenerator[None]:
        yield from transition(log, pstat, "cc_charge", "resume", 2)
        reasons["resume"] = yield from constant_current(
            pstat, current, until_voltage=until_voltage, timeout=resume_time
        )
        yield from transition(log, pstat, "done", reasons["resume"], 2)

    def scan(n: int) -> MsgGenerator[None]:
        yield from start_ocv_hold(pstat)
        yield from xrdct(
            mode, det, stage, monitor, angles, translations, poni_file=poni_file,
            pstat=pstat, sample=sample, transmission=transmission,
            md={**experiment, "step": f"scan {n}", "protocol_n": n},
        )  # fmt: skip
        yield from end_hold(pstat)
        reasons[f"scan {n}"] = "done"

    def protocol() -> MsgGenerator[dict[str, str]]:
        yield from electrochemistry_run(pstat, rest(), md={**experiment, "step": "rest"})
        yield from scan(1)
        yield from electrochemistry_run(pstat, charge(), md={**experiment, "step": "charge"})
        yield from scan(2)
        yield from electrochemistry_run(pstat, resume(), md={**experiment, "step": "resume"})
        yield from bps.null()
        return reasons

    return (yield from open_circuit_on_exit(pstat, protocol()))
