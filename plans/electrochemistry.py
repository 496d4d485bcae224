"""Plan stubs for electrochemical steps; each returns why the step ended."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from ..devices.methodscript_client import PotentiostatError
from ..devices.potentiostat import (
    OCV,
    ConstantCurrent,
    ConstantVoltage,
    Potentiostat,
    Step,
    TriggeredDischarge,
)

log = logging.getLogger(__name__)
LINK_TIMEOUT = 600.0  # s to wait for a lost serial link before the plan fails


def wait_until(
    predicate: Callable[[], object], *, timeout: float, what: str, poll: float = 0.05
) -> MsgGenerator[object]:
    """Wait (without blocking the RunEngine) until ``predicate()`` is truthy; return it.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` s.
    """

    async def poller() -> object:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s")
            await asyncio.sleep(poll)
        return value

    tasks = yield from bps.wait_for([poller])
    return tasks[0].result()


def remaining(step: Step, elapsed: float) -> Step | None:
    """``step`` with ``elapsed`` s of its time used up; None if nothing is left."""
    if isinstance(step, OCV):
        left = step.duration - elapsed
        return dataclasses.replace(step, duration=left) if left > 0 else None
    if isinstance(step, TriggeredDischarge):
        return None  # the instrument's own program cannot be resumed midway
    left = step.timeout - elapsed
    return dataclasses.replace(step, timeout=left) if left > 0 else None


def run_step(
    pstat: Potentiostat, step: Step, *, link_timeout: float = LINK_TIMEOUT
) -> MsgGenerator[str]:
    """Run one step to its end and return its reason (``voltage_limit``, ``timeout``...).

    If the serial link is lost mid-step (the instrument then puts the cell at open
    circuit), the plan suspends with a message until the link is back, then resumes
    the step for the time it had left. It fails after ``link_timeout`` s without link.
    """
    todo: Step | None = step
    used = 0.0
    reason = "timeout"
    while todo is not None:
        group = f"{pstat.name}-{uuid.uuid4().hex[:8]}"
        try:
            status = yield from bps.abs_set(pstat, todo, group=group)
        except PotentiostatError:
            if pstat.client.connected.is_set():
                raise
            reason = "disconnected"  # lost between the check and the command
        else:
            yield from bps.wait(group=group)
            reason = str(status.reason)
            if reason != "disconnected":
                return reason
            used += status.elapsed
        log.warning(
            "SUSPENDED: %s serial link %s lost %.0f s into %s; the instrument left the cell "
            "at open circuit. Waiting up to %g s for the link to come back ...",
            pstat.name,
            pstat.url,
            used,
            step,
            link_timeout,
        )
        try:
            yield from wait_until(
                pstat.client.connected.is_set,
                timeout=link_timeout,
                what=f"{pstat.name} serial link {pstat.url}",
            )
        except TimeoutError as exc:
            raise PotentiostatError(str(exc)) from exc
        todo = remaining(step, used)
        log.warning("RESUMED: %s link is back; continuing with %s", pstat.name, todo)
    if isinstance(step, TriggeredDischarge):
        return "disconnected"
    return "done" if isinstance(step, OCV) else "timeout"  # its time ran out while unplugged


def ocv(pstat: Potentiostat, duration: float) -> MsgGenerator[str]:
    """Rest at open circuit for ``duration`` s (instrument clock)."""
    return (yield from run_step(pstat, OCV(duration)))


def constant_current(
    pstat: Potentiostat, current: float, *, until_voltage: float, timeout: float
) -> MsgGenerator[str]:
    """Constant current until ``until_voltage`` is crossed (``voltage_limit``) or ``timeout``."""
    return (yield from run_step(pstat, ConstantCurrent(current, until_voltage, timeout)))


def constant_voltage(
    pstat: Potentiostat, voltage: float, *, until_current: float, timeout: float
) -> MsgGenerator[str]:
    """Constant voltage until |I| ≤ ``until_current`` (``current_limit``) or ``timeout``."""
    return (yield from run_step(pstat, ConstantVoltage(voltage, until_current, timeout)))


def start_ocv_hold(pstat: Potentiostat, max_duration: float = 1e6) -> MsgGenerator[None]:
    """Switch to open circuit and keep recording it until :func:`end_hold` (no wait)."""
    yield from bps.abs_set(pstat, OCV(max_duration), group=f"{pstat.name}-hold")


def end_hold(pstat: Potentiostat) -> MsgGenerator[None]:
    """Stop the running step; the cell stays at open circuit."""
    yield Msg("stop", pstat)


def open_circuit_on_exit(pstat: Potentiostat, plan: MsgGenerator) -> MsgGenerator:
    """Run ``plan``; whatever happens (fault, pause-abort, Ctrl-C) end at open circuit."""

    def cleanup() -> MsgGenerator[None]:
        yield Msg("stop", pstat)

    return (yield from bpp.finalize_wrapper(plan, cleanup()))


def recorded(
    pstat: Potentiostat, plan_factory: Callable[[], MsgGenerator], *, hold_if_idle: bool = False
) -> MsgGenerator:
    """Inside an open run: record the V/I log as the ``electrochemistry`` stream around ``plan``.

    The instrument sends data only while a script runs. With ``hold_if_idle`` (for plans
    that never command the potentiostat, such as scans), a cell at rest with no step
    running is held at open circuit while ``plan`` runs, so its voltage is logged too;
    the hold ends with the plan.
    """
    hold = hold_if_idle and not pstat.client.busy
    yield from bps.kickoff(pstat, wait=True)
    if hold:
        yield from start_ocv_hold(pstat)
    try:
        result = yield from plan_factory()
    finally:
        if hold:
            yield from end_hold(pstat)
        yield from bps.complete(pstat, wait=True)
        yield from bps.collect(pstat)
    return result


F_PER_MAH = 3.6  # C per mAh


def cell_state(pstat: Potentiostat, sample: dict | None = None) -> MsgGenerator[dict]:
    """The cell's state as a scan starts, for its start document (a run store finds scans
    by it): ``voltage_start`` (V) and ``charge_passed`` (C since the potentiostat
    connected; + = charge); with the sample's ``capacity_mAh`` and ``lithium_x0`` (its
    lithium content at connection), the nominal ``lithium_x`` by coulomb counting
    (a full capacity of charge takes one lithium per formula unit out)."""
    voltage = yield from bps.rd(pstat.voltage)
    charge = yield from bps.rd(pstat.charge)
    state = {"voltage_start": float(voltage), "charge_passed": float(charge)}
    sample = sample or {}
    if sample.get("capacity_mAh") and "lithium_x0" in sample:
        full = float(sample["capacity_mAh"]) * F_PER_MAH
        state["lithium_x"] = float(sample["lithium_x0"]) - float(charge) / full
    return state
