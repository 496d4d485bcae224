"""Plan stubs for electrochemical steps; each returns why the step ended."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from ..devices.potentiostat import OCV, ConstantCurrent, ConstantVoltage, Potentiostat, Step


def run_step(pstat: Potentiostat, step: Step) -> MsgGenerator[str]:
    """Run one step to its end and return its reason (``voltage_limit``, ``timeout``...)."""
    group = f"{pstat.name}-{uuid.uuid4().hex[:8]}"
    status = yield from bps.abs_set(pstat, step, group=group)
    yield from bps.wait(group=group)
    return str(status.reason)


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


def recorded(pstat: Potentiostat, plan_factory: Callable[[], MsgGenerator]) -> MsgGenerator:
    """Inside an open run: record the V/I log as the ``electrochemistry`` stream around ``plan``."""
    yield from bps.kickoff(pstat, wait=True)
    try:
        result = yield from plan_factory()
    finally:
        yield from bps.complete(pstat, wait=True)
        yield from bps.collect(pstat)
    return result
