"""Seed 001's coupling: the potentiostat runs its own discharge and triggers the scans.

The instrument runs a :class:`TriggeredDischarge` program. Each time it pauses the
cell it raises its pause line (``trig:In`` on the beamline side); the plan sees the
rising edge, takes a scan, then raises ``trig:Out`` (scan done) until the instrument
drops the pause line and starts its next segment. The plan waits for each edge with a
timeout, and ends when the instrument's program ends.
"""

from __future__ import annotations

import uuid
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from ..devices.potentiostat import Potentiostat, StepStatus, TriggeredDischarge
from ..devices.trigger import TriggerLines
from .electrochemistry import wait_until
from .holotomo import ProtocolResult, ScanPlan
from .operando import electrochemistry_run
from .protocol_log import ProtocolLog, transition


def triggered_protocol(
    pstat: Potentiostat,
    lines: TriggerLines,
    scan: ScanPlan,
    program: TriggeredDischarge,
    *,
    trigger_timeout: float,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[ProtocolResult]:
    """Start ``program`` on the potentiostat and scan at each of its pauses.

    ``trigger_timeout``: wall seconds to wait for the next pause (or the program's end)
    before the plan fails (and the cell is put at open circuit).
    """
    pstat.check_step(program)
    log = ProtocolLog()
    result = ProtocolResult(transitions=log.history)
    experiment = {
        "experiment_id": uuid.uuid4().hex,
        "protocol": "triggered",
        "protocol_parameters": {
            "current": program.current,
            "v_min": program.v_min,
            "segment": program.segment,
            "max_pauses": program.max_pauses,
            "pause_timeout": program.pause_timeout,
        },
        **(md or {}),
    }
    holder: dict[str, Any] = {"seen": lines.rising_edges}

    def until_pause(first: bool, n: int) -> MsgGenerator[str]:
        if first:
            yield from bps.mv(lines.trig_out, 0)
            yield from transition(log, pstat, "triggered_discharge", "start", n)
            holder["seen"] = lines.rising_edges
            holder["status"] = yield from bps.abs_set(pstat, program, group="program")
        status: StepStatus = holder["status"]

        def pause_or_end() -> str | None:
            if lines.rising_edges > holder["seen"]:
                return "trigger"
            return "program_end" if status.done else None

        got = yield from wait_until(
            pause_or_end,
            timeout=trigger_timeout,
            what=f"pause trigger from the potentiostat on {lines.trig_in.pvname}",
        )
        holder["seen"] = lines.rising_edges
        if got == "trigger":
            yield from transition(log, pstat, "scan", "trigger", n + 1)
        else:
            yield from transition(log, pstat, "done", str(status.reason), n)
        return str(got)

    def protocol() -> MsgGenerator[ProtocolResult]:
        n = 0
        while True:
            got = yield from electrochemistry_run(
                pstat, until_pause(n == 0, n), md={**experiment, "step": f"segment {n + 1}"}
            )
            if got != "trigger":
                return result
            n += 1
            result.scans.append((n, "pause", "trigger"))
            yield from scan({**experiment, "step": f"scan {n}", "protocol_n": n})
            yield from bps.mv(lines.trig_out, 1)  # scan done
            yield from wait_until(
                lambda: lines.trig_in.get() == 0 or holder["status"].done,
                timeout=trigger_timeout,
                what="the potentiostat to end its pause",
            )
            yield from bps.mv(lines.trig_out, 0)

    def cleanup() -> MsgGenerator[None]:
        yield Msg("stop", pstat)
        yield from bps.mv(lines.trig_out, 0)

    return (yield from bpp.finalize_wrapper(protocol(), cleanup()))
