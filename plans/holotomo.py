"""The automated charge/discharge protocol of seed 002 (Häusler et al., Fig. S6).

1. Record the OCV; n = 0.
2. Constant current (charge) until V ≥ ``v_max`` or ``period``: on timeout, scan, n += 1
   and continue CC with a fresh timer; on ``v_max`` go to CV.
3. Constant voltage ``v_max`` until |I| ≤ the threshold or ``period``: either way scan,
   n += 1; continue CV while n < ``n_max``, else leave the charge loop.
4. Discharge at constant current to ``v_min``, scanning every ``period``; at ``v_min``
   take two back-to-back scans (relaxation).

Before every scan the cell rests ``pre_scan_ocv`` s at open circuit and stays at open
circuit during it; afterwards the step resumes. Each transition is an event of the
``transitions`` stream; each stretch of electrochemistry between scans is a run with the
``electrochemistry`` stream. The cell ends at open circuit whatever happens.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bluesky.utils import MsgGenerator

from ..devices.potentiostat import OCV, ConstantCurrent, ConstantVoltage, Potentiostat
from .electrochemistry import end_hold, open_circuit_on_exit, run_step, start_ocv_hold
from .operando import electrochemistry_run
from .protocol_log import ProtocolLog, transition

ScanPlan = Callable[[dict[str, Any]], MsgGenerator[Any]]


@dataclass(frozen=True)
class HolotomoParameters:
    """Every number of the protocol (SI units: A, V, s)."""

    one_c: float  # the 1C current of the cell
    n_max: int = 3
    v_max: float = 4.3
    v_min: float = 2.5
    charge_rate: float = 1 / 3
    threshold_rate: float = 1 / 10
    discharge_rate: float = 1 / 6
    period: float = 1800.0
    pre_scan_ocv: float = 60.0
    initial_ocv: float = 60.0

    def steps(self) -> tuple[ConstantCurrent, ConstantVoltage, ConstantCurrent]:
        """The CC charge, CV hold and CC discharge steps (each for one period)."""
        return (
            ConstantCurrent(self.charge_rate * self.one_c, self.v_max, self.period),
            ConstantVoltage(self.v_max, self.threshold_rate * self.one_c, self.period),
            ConstantCurrent(-self.discharge_rate * self.one_c, self.v_min, self.period),
        )


@dataclass
class _State:
    phase: str = "cc_charge"
    cause: str = "start"
    n: int = 0


@dataclass
class ProtocolResult:
    """What happened: every scan as (n, phase, reason), and the transitions."""

    scans: list[tuple[int, str, str]] = field(default_factory=list)
    transitions: list[tuple[str, str, int]] = field(default_factory=list)


def seed_holotomo_protocol(
    pstat: Potentiostat,
    scan: ScanPlan,
    params: HolotomoParameters,
    *,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[ProtocolResult]:
    """Run the seed-002 flowchart; ``scan(md)`` takes one scan as a run of its own.

    ``scan`` receives start-document metadata (experiment id, ``protocol_n``,
    ``protocol_phase``, ``protocol_reason``) and should record ``pstat`` during the
    scan (e.g. ``xrdct_scan(..., pstat=pstat, md=md)``).
    """
    charge, hold, discharge = params.steps()
    for step in (charge, hold, discharge):
        pstat.check_step(step)  # refuse a bad protocol before the cell is touched
    if params.n_max < 1:
        raise ValueError(f"n_max = {params.n_max} must be ≥ 1")
    log = ProtocolLog()
    result = ProtocolResult(transitions=log.history)
    experiment = {
        "experiment_id": uuid.uuid4().hex,
        "protocol": "seed_holotomo",
        "protocol_parameters": asdict(params),
        **(md or {}),
    }
    state = _State()

    def segment(first: bool) -> MsgGenerator[list[str]]:
        """Electrochemistry until scans are due; returns the reasons of those scans."""
        n = state.n
        if first:
            yield from transition(log, pstat, "ocv", "start", n)
            yield from run_step(pstat, OCV(params.initial_ocv))
        while True:
            phase = state.phase
            yield from transition(log, pstat, phase, state.cause, n)
            if phase == "cc_charge":
                reason = yield from run_step(pstat, charge)
                if reason == "voltage_limit":
                    state.phase, state.cause = "cv_hold", reason
                    continue
                due = [reason]
            elif phase == "cv_hold":
                due = [(yield from run_step(pstat, hold))]
            else:
                reason = yield from run_step(pstat, discharge)
                due = [reason, "relaxation"] if reason == "voltage_limit" else [reason]
            yield from transition(log, pstat, "pre_scan_ocv", due[0], n)
            yield from run_step(pstat, OCV(params.pre_scan_ocv))
            yield from transition(log, pstat, "scan", due[0], n + 1)
            return due

    def one_scan(reason: str) -> MsgGenerator[None]:
        state.n += 1
        n, phase = state.n, state.phase
        result.scans.append((n, phase, reason))
        scan_md = {
            **experiment,
            "step": f"scan {n}",
            "protocol_n": n,
            "protocol_phase": phase,
            "protocol_reason": reason,
        }
        yield from scan(scan_md)

    def protocol() -> MsgGenerator[ProtocolResult]:
        first = True
        while state.phase != "done":
            due = yield from electrochemistry_run(
                pstat, segment(first), md={**experiment, "step": state.phase}
            )
            first = False
            yield from start_ocv_hold(pstat)
            yield from one_scan(due[0])
            for reason in due[1:]:  # back-to-back: the second scan follows at once
                yield from electrochemistry_run(
                    pstat,
                    transition(log, pstat, "scan", reason, state.n + 1),
                    md={**experiment, "step": "relaxation"},
                )
                yield from one_scan(reason)
            yield from end_hold(pstat)
            phase, n = state.phase, state.n
            if phase == "cv_hold" and n >= params.n_max:
                state.phase, state.cause = "discharge", "n_max"
            elif phase == "discharge" and len(due) > 1:
                state.phase, state.cause = "done", "v_min"
            else:
                state.cause = "resume"
        yield from electrochemistry_run(
            pstat,
            transition(log, pstat, "done", "v_min", state.n),
            md={**experiment, "step": "done"},
        )
        return result

    return (yield from open_circuit_on_exit(pstat, protocol()))
