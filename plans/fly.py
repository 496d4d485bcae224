"""Fly-scanned XRD-CT: the translation sweeps while the detector takes a row of frames.

For each angle the stage rotates, then the translation runs from a run-up point
through the row at ``v = step / exposure`` while the detector exposes one burst of
``n_translations`` frames on its own clock, started by the stage's position compare
as x passes the first frame's edge (not by the host's clock), so frame k is centred on
translation point k. Rows alternate direction
(snake), so the translation never travels back. Each row is one event (its angle
index, first frame id, direction, monitor): the contract in ``protocols.xrdct``.

Faults at row granularity: suspenders on the beam monitor (below a fraction of its
level at the start) and on the shutter suspend the plan. Whatever bluesky replays from
the row's checkpoint on resume, the row is judged afterwards: if the monitor fell below
that fraction at any time during the burst (a closed shutter does that too), or the
detector reports fewer frames sent than requested, the row is acquired again from its
run-up point. The row's event is emitted once, for the good acquisition.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.suspenders import SuspendBoolLow, SuspendFloor
from bluesky.utils import FailedStatus, MsgGenerator
from ophyd import Component as Cpt
from ophyd import Device, Signal

from ..devices.detector import FrameDetector
from ..devices.potentiostat import Potentiostat
from ..devices.stage import TomoStage
from ..protocols.xrdct import KEY, PRIMARY, XrdctGeometry
from .electrochemistry import cell_state, recorded
from .xrdct import ScanLimitError, check_limits

log = logging.getLogger(__name__)

START_MARGIN = 0.005  # s at full speed between the end of the ramp and the first frame
ROW_OVERHEAD = 0.03  # s per row for Channel Access round trips (measured on the simulator)
MAX_ATTEMPTS = 5  # acquisitions of one row before the scan fails
RETRY_PAUSE = 0.5  # s after a row's failed put, before it is acquired again
DIRECTIONS = ("Positive", "Negative")  # of the sweep, by the side it starts from


class FlyRow(Device):
    """What one fly-scanned row was: the ``primary`` event of the row."""

    row_index = Cpt(Signal, value=0, kind="normal")
    first_frame = Cpt(Signal, value=-1, kind="normal")
    reversed = Cpt(Signal, value=False, kind="normal")
    frames = Cpt(Signal, value=0, kind="normal")
    attempts = Cpt(Signal, value=0, kind="normal")


@dataclass(frozen=True)
class MotorProfile:
    """What the estimate needs of a motor: speed (units/s) and time to reach it (s)."""

    velocity: float
    accel_time: float

    def move_time(self, distance: float) -> float:
        """Trapezoidal move time (triangular when too short to cruise)."""
        d = abs(distance)
        if d == 0:
            return 0.0
        if d >= self.velocity * self.accel_time:
            return d / self.velocity + self.accel_time
        return 2 * math.sqrt(d * self.accel_time / self.velocity)


def run_up(step: float, exposure: float, x: MotorProfile) -> float:
    """Distance before the first point where a row starts (ramp + margin + half a step)."""
    v = step / exposure
    return step / 2 + v * x.accel_time / 2 + v * START_MARGIN


def estimate_fly_time(
    angles: Sequence[float],
    translations: Sequence[float],
    exposure: float,
    x: MotorProfile,
    rot: MotorProfile,
    *,
    x_now: float,
    rot_now: float,
    row_overhead: float = ROW_OVERHEAD,
) -> float:
    """Seconds a snake fly scan will take, from motor dynamics, exposure and overhead."""
    n = len(translations)
    step = abs(translations[1] - translations[0]) if n > 1 else 0.0
    v = step / exposure
    runup = run_up(step, exposure, x)
    first = min(translations) - runup
    t = max(x.move_time(first - x_now), rot.move_time(angles[0] - rot_now))
    row = x.accel_time + START_MARGIN + n * exposure + (runup - step / 2) / max(v, 1e-9)
    t += len(angles) * (row + row_overhead)
    t += sum(rot.move_time(b - a) for a, b in itertools.pairwise(angles))
    return t


def check_fly(stage: TomoStage, translations: Sequence[float], exposure: float) -> float:
    """Refuse a fly scan the translation cannot do; return its velocity (mm/s)."""
    if len(translations) < 2:
        raise ScanLimitError("a fly scan needs at least 2 translation points")
    steps = [b - a for a, b in itertools.pairwise(translations)]
    step = steps[0]
    if any(abs(s - step) > 1e-6 * max(abs(step), 1e-9) for s in steps) or step <= 0:
        raise ScanLimitError("fly-scan translations must be increasing with a constant step")
    v = step / exposure
    vmax = float(stage.x.max_velocity.get())
    if vmax > 0 and v > vmax:
        raise ScanLimitError(
            f"{stage.x.name}: fly velocity {v:g} {stage.x.egu}/s (step {step:g} / exposure "
            f"{exposure:g} s) exceeds the motor's maximum {vmax:g} {stage.x.egu}/s"
        )
    prof = MotorProfile(v, float(stage.x.acceleration.get()))
    runup = run_up(step, exposure, prof)
    lo, hi = stage.x.limits
    if lo != hi:
        for value in (translations[0] - runup, translations[-1] + runup):
            if not lo <= value <= hi:
                raise ScanLimitError(
                    f"{stage.x.name}: fly row with run-up reaches {value:g} {stage.x.egu}, "
                    f"outside the soft limits [{lo:g}, {hi:g}] {stage.x.egu}"
                )
    return v


def failed_part(exc: FailedStatus) -> str:
    """The name of what a failed status was for (a signal, a motor)."""
    status = exc.args[0] if exc.args else None
    return str(getattr(getattr(status, "obj", None), "name", None) or exc)


def restoring(plan: MsgGenerator[Any], what: str) -> MsgGenerator[None]:
    """A cleanup's restore of ``what``: a failure (the IOC gone) is logged, not raised,
    so that it never hides why the scan ended."""
    try:
        yield from plan
    except FailedStatus as exc:
        part = failed_part(exc)
        log.warning("  %s was not restored%s", what, "" if part == what else f" ({part} failed)")


def beam_suspenders(monitor: Signal, shutter_status: Signal | None, fraction: float = 0.5):
    """Suspend below ``fraction`` of the monitor's present level, or with the shutter shut."""
    level = float(monitor.get())
    if not level > 0:
        raise ScanLimitError(f"{monitor.name} reads {level:g}: no beam to scan with")
    sus: list[Any] = [
        SuspendFloor(
            monitor,
            fraction * level,
            resume_thresh=0.8 * level,
            sleep=0.2,
            tripped_message=f"beam monitor {monitor.name} below {fraction:.0%} of {level:.4g}",
        )
    ]
    if shutter_status is not None:
        sus.append(SuspendBoolLow(shutter_status, sleep=0.2, tripped_message="shutter closed"))
    return sus


def fly_xrdct(
    det: FrameDetector,
    stage: TomoStage,
    monitor: Signal,
    angles: Sequence[float],
    translations: Sequence[float],
    *,
    poni_file: str,
    shutter_status: Signal | None = None,
    pstat: Potentiostat | None = None,
    suspend_fraction: float = 0.5,
    sample: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
    volume: dict[str, Any] | None = None,
) -> MsgGenerator[None]:
    """Fly-scanned XRD-CT, one detector burst per angle (snake rows).

    Parameters
    ----------
    det, stage, monitor
        Streaming detector (its ``exposure`` sets the frame time), tomography stage,
        beam-monitor signal.
    angles, translations
        Rotation angles (deg) and equally spaced increasing translations (mm).
    poni_file
        pyFAI geometry of the detector, recorded in the start document.
    shutter_status
        If given, a closed shutter suspends the scan.
    pstat
        If given, its V/I log is recorded during the scan (``electrochemistry`` stream).
    suspend_fraction
        Suspend when the monitor falls below this fraction of its level at the start.
    sample, md
        Sample description and extra start-document metadata.
    volume
        This scan as one z plane of a volume (:attr:`XrdctGeometry.volume`): the
        processor assembles the planes' files into one volume file.
    """
    angles = [float(a) for a in angles]
    translations = [float(t) for t in translations]
    exposure = float(det.exposure.get())
    velocity = check_fly(stage, translations, exposure)
    check_limits(stage, angles, translations)
    x_default = float(stage.x.velocity.get())
    x_prof = MotorProfile(velocity, float(stage.x.acceleration.get()))
    rot_prof = MotorProfile(float(stage.rot.velocity.get()), float(stage.rot.acceleration.get()))
    estimate = estimate_fly_time(
        angles,
        translations,
        exposure,
        x_prof,
        rot_prof,
        x_now=float(stage.x.position),
        rot_now=float(stage.rot.position),
    )
    log.info(
        "  fly scan: %d rows x %d frames of %g s at %g mm/s; estimated %.1f s",
        len(angles),
        len(translations),
        exposure,
        velocity,
        estimate,
    )
    row = FlyRow(name="fly")
    step = translations[1] - translations[0]
    runup = run_up(step, exposure, x_prof)
    ends = (translations[0] - runup, translations[-1] + runup)
    edges = (translations[0] - step / 2, translations[-1] + step / 2)  # first frame's edge
    n = len(translations)
    geometry = XrdctGeometry(
        angles=angles,
        translations=translations,
        snake=True,
        frame_key=row.first_frame.name,
        series_key=det.series_id.name,
        monitor_key=monitor.name,
        poni_file=str(poni_file),
        detector={"name": det.name, "exposure": exposure},
        sample=sample or {},
        mode="fly",
        row_key=row.row_index.name,
        reversed_key=row.reversed.name,
        estimated_time=estimate,
        volume=dict(volume or {}),
    )
    _md = {
        "plan_name": "fly_xrdct",
        "scan_kind": "xrdct_fly",
        "sample": sample or {},
        "detectors": [det.name],
        "motors": [stage.rot.name, stage.x.name],
        "num_points": len(angles),
        "num_intervals": len(angles) - 1,
        "hints": {"dimensions": [([stage.rot.name], PRIMARY)]},
        "estimated_time": estimate,
        KEY: geometry.to_md(),
        **(md or {}),
    }
    at_start = {"side": 0}  # which end of the travel the translation is at
    # the lowest monitor reading during a burst: a beam drop too short (or too late) to
    # trip the suspender still spoils the row, which is then acquired again
    level = float(monitor.get())
    lowest = {"value": math.inf}

    def track(value: float | None = None, **_: Any) -> None:
        if value is not None:
            lowest["value"] = min(lowest["value"], float(value))

    def one_row(i: int) -> MsgGenerator[None]:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # the checkpoint makes a suspension re-run exactly this: back to the run-up
            # point, sweep, burst
            yield from bps.checkpoint()
            try:
                if (yield from acquire_row(i, attempt)):
                    return
            except FailedStatus as exc:  # a put refused or lost (an IOC gone mid-row)
                log.warning("  row %d: %s failed; acquiring it again", i + 1, failed_part(exc))
                # a lost IOC trips the connection suspender meanwhile: the scan waits for
                # it here (and resumes from this checkpoint) or fails naming it
                yield from bps.checkpoint()
                yield from bps.sleep(RETRY_PAUSE)
        raise RuntimeError(f"row {i + 1} failed {MAX_ATTEMPTS} times (no beam or frames lost)")

    def acquire_row(i: int, attempt: int) -> MsgGenerator[bool]:
        """One sweep and burst of row ``i``; True if it was recorded (an event)."""
        side = at_start["side"]
        rev = side == 1
        # the rotation overlaps the end of the previous sweep (x running out to here);
        # moves to where a motor already is are not sent (ophyd's EpicsMotor can
        # mistake their done-moving transitions for those of the next move)
        if abs(stage.rot.position - angles[i]) > 1e-6:
            yield from bps.abs_set(stage.rot, angles[i], group="rotate")
        yield from bps.wait(group="sweep")
        if abs(stage.x.position - ends[side]) > 1e-6:
            yield from bps.mv(stage.x, ends[side])
        # the position compare starts the burst as x passes the first frame's edge:
        # frame k is centred on point k whatever this host is doing meanwhile
        yield from bps.mv(stage.pc.start, edges[side], stage.pc.direction, DIRECTIONS[side])
        yield from bps.wait(group="rotate")
        lowest["value"] = math.inf
        yield from bps.mv(stage.pc.arm, 1)  # armed (acknowledged) before x moves
        yield from bps.trigger(det, group="burst")  # the burst waits for the pulse
        yield from bps.abs_set(stage.x, ends[1 - side], group="sweep")
        yield from bps.wait(group="burst")  # not the run-out: the next row waits for it
        at_start["side"] = 1 - side
        first = yield from bps.rd(det.frame_index)  # image id of the burst's first frame
        sent = yield from bps.rd(det.num_images_counter)
        beam_ok = lowest["value"] >= suspend_fraction * level
        if not beam_ok:
            log.warning(
                "  row %d: beam monitor fell to %.4g during the row; acquiring it again",
                i + 1,
                lowest["value"],
            )
        elif int(sent) == n:
            yield from bps.mv(
                row.row_index,
                i,
                row.first_frame,
                int(first),
                row.reversed,
                rev,
                row.frames,
                int(sent),
                row.attempts,
                attempt,
            )
            # (the detector is read, not triggered again: its configuration, with the
            # series id and stream address, goes into the descriptor)
            yield from bps.create(name=PRIMARY)
            for obj in (row, monitor, det):
                yield from bps.read(obj)
            yield from bps.save()
            return True
        else:
            log.warning(
                "  row %d: the detector sent %s of %d frames; acquiring it again",
                i + 1,
                sent,
                n,
            )
        return False

    def rows() -> MsgGenerator[None]:
        yield from bps.mv(stage.rot, angles[0], stage.x, ends[0])  # at the motor's own speed
        yield from bps.mv(stage.x.velocity, velocity)
        token = monitor.subscribe(track, run=False)
        try:
            for i in range(len(angles)):
                yield from one_row(i)
            yield from bps.wait(group="sweep")
        finally:
            monitor.unsubscribe(token)
            yield from restoring(bps.mv(stage.x.velocity, x_default), stage.x.velocity.name)

    @bpp.stage_decorator([det])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        if pstat is not None:
            yield from recorded(pstat, rows, hold_if_idle=True)
        else:
            yield from rows()

    def body() -> MsgGenerator[None]:
        old_burst, old_source = det.burst.get(), det.trigger_source.get()
        # staging arms bursts of a row's frames, each started by the position compare
        yield from bps.mv(det.burst, n, det.trigger_source, "External")
        restore = restoring(
            bps.mv(det.burst, old_burst, det.trigger_source, old_source), det.burst.name
        )
        if pstat is not None:  # the cell's state as the scan starts, in its start document
            _md.update((yield from cell_state(pstat, sample)))
        yield from bpp.finalize_wrapper(inner(), restore)

    suspenders = beam_suspenders(monitor, shutter_status, suspend_fraction)
    yield from bpp.suspend_wrapper(body(), suspenders)
