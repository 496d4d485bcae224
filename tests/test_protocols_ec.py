"""The seed-002 flowchart and the driver's fault handling, through the real serial protocol.

Each test runs its own potentiostat simulator on a pty with time acceleration; scans
are light stand-in runs here (the full protocol with XRD-CT scans is in
``test_protocol_e2e.py``), so the asserted sequences are the protocol's own logic.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import event_model
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from operando.devices.potentiostat import ConstantCurrent, Potentiostat
from operando.plans.electrochemistry import constant_current, open_circuit_on_exit, recorded
from operando.plans.holotomo import HolotomoParameters, seed_holotomo_protocol
from operando.simulators import launcher

FACTOR = 2000.0
ONE_C = 0.05 * 3.6 / 3600  # A, the simulated 0.05 mAh cell


def start_sim(soc: float, replug_after: float = 2.0) -> launcher.SimProcess:
    return launcher.start_potentiostat(FACTOR, 0.05, soc, replug_after=replug_after)


@pytest.fixture()
def cell(request: pytest.FixtureRequest) -> Iterator[tuple[launcher.SimProcess, Potentiostat]]:
    sim = start_sim(request.param)
    pstat = Potentiostat(sim.info["port"], name="pstat", sample_interval=10.0)
    pstat.lease.put(60.0 * 600)  # one wall minute of this 600x instrument (its steps: one script)
    pstat.connect()
    yield sim, pstat
    pstat.destroy()
    sim.stop()


def stub_scan(pstat: Potentiostat):
    """A stand-in scan: a run of its own that records the V/I log while it lasts."""

    def scan(md: dict[str, Any]):
        @bpp.run_decorator(md={"plan_name": "stub_scan", **md})
        def inner():
            yield from recorded(pstat, lambda: bps.sleep(0.02))

        yield from inner()

    return scan


def run_protocol(pstat: Potentiostat, params: HolotomoParameters) -> list[tuple[str, dict]]:
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(seed_holotomo_protocol(pstat, stub_scan(pstat), params))
    return docs


def events(docs: list[tuple[str, dict]]) -> list[dict]:
    """Every event, event pages unpacked, in order."""
    out: list[dict] = []
    for name, doc in docs:
        if name == "event":
            out.append(doc)
        elif name == "event_page":
            out.extend(event_model.unpack_event_page(doc))
    return out


def transitions(docs: list[tuple[str, dict]]) -> list[tuple[str, str, int]]:
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [
        (d["data"]["protocol_state"], d["data"]["protocol_reason"], d["data"]["protocol_n"])
        for n, d in docs
        if n == "event" and streams[d["descriptor"]] == "transitions"
    ]


def scans(docs: list[tuple[str, dict]]) -> list[tuple[int, str, str]]:
    return [
        (d["protocol_n"], d["protocol_phase"], d["protocol_reason"])
        for n, d in docs
        if n == "start" and d["plan_name"] == "stub_scan"
    ]


def cell_state(sim: launcher.SimProcess) -> dict[str, Any]:
    lines = [line for line in list(sim.log) if line.startswith("STATE ")]
    return json.loads(lines[-1][6:])


@pytest.mark.parametrize("cell", [0.98], indirect=True)
def test_charge_timeouts_current_timeout_n_max_discharge_and_double_end_scan(cell) -> None:
    """From discharged: CC times out 4× before 4.3 V; CV times out, then reaches the
    threshold, reaching N_max; discharge times out and ends at V_min with two scans."""
    sim, pstat = cell
    # (numbers chosen so every condition is met well inside its period, ≥ 500 s of
    # cell time from a timeout, so the sequence does not depend on timing jitter)
    params = HolotomoParameters(one_c=ONE_C, n_max=6, threshold_rate=1 / 30, v_min=3.93)
    t0 = time.monotonic()
    docs = run_protocol(pstat, params)
    wall = time.monotonic() - t0

    def timed_out(state: str, n: int) -> list[tuple[str, str, int]]:
        return [
            ("pre_scan_ocv", "timeout", n),
            ("scan", "timeout", n + 1),
            (state, "resume", n + 1),
        ]

    expected = [("ocv", "start", 0), ("cc_charge", "start", 0)]
    for n in range(4):  # four 30-min CC periods without reaching 4.3 V
        expected += timed_out("cc_charge", n)
    expected += [("cv_hold", "voltage_limit", 4), *timed_out("cv_hold", 4)]
    expected += [("pre_scan_ocv", "current_limit", 5), ("scan", "current_limit", 6)]
    expected += [("discharge", "n_max", 6)]  # n = 6 = N_max: leave the charge loop
    for n in range(6, 14):  # eight 30-min discharge periods above V_min
        expected += timed_out("discharge", n)
    expected += [
        ("pre_scan_ocv", "voltage_limit", 14),
        ("scan", "voltage_limit", 15),
        ("scan", "relaxation", 16),
        ("done", "v_min", 16),
    ]
    assert transitions(docs) == expected
    assert scans(docs) == [
        *[(n, "cc_charge", "timeout") for n in range(1, 5)],
        (5, "cv_hold", "timeout"),
        (6, "cv_hold", "current_limit"),
        *[(n, "discharge", "timeout") for n in range(7, 15)],
        (15, "discharge", "voltage_limit"),
        (16, "discharge", "relaxation"),
    ]
    # every document is valid event-model, and the cell ends at open circuit
    for name, doc in docs:
        event_model.schema_validators[event_model.DocumentNames(name)].validate(doc)
    assert cell_state(sim)["cell"] is False
    print(f"protocol with 16 scans took {wall:.1f} s wall")


@pytest.mark.parametrize("cell", [0.32], indirect=True)
def test_voltage_and_current_reached_before_timeout(cell) -> None:
    """Nearly charged: 4.3 V before the first timeout, then the C/10 threshold before
    its timeout; N_max = 1 sends it straight to discharge."""
    sim, pstat = cell
    params = HolotomoParameters(one_c=ONE_C, n_max=1, v_min=4.1, period=1800.0)
    docs = run_protocol(pstat, params)
    got = transitions(docs)
    assert got[:6] == [
        ("ocv", "start", 0),
        ("cc_charge", "start", 0),
        ("cv_hold", "voltage_limit", 0),
        ("pre_scan_ocv", "current_limit", 0),
        ("scan", "current_limit", 1),
        ("discharge", "n_max", 1),
    ]
    assert got[-1][:2] == ("done", "v_min") and got[-2][:2] == ("scan", "relaxation")
    assert scans(docs)[0] == (1, "cv_hold", "current_limit")
    assert cell_state(sim)["cell"] is False


def states_since(sim: launcher.SimProcess, mark: int) -> list[dict[str, Any]]:
    lines = list(sim.log)[mark:]
    return [json.loads(line[6:]) for line in lines if line.startswith("STATE ")]


def wait_cell_off(sim: launcher.SimProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while cell_state(sim)["cell"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return cell_state(sim)


@pytest.mark.parametrize("cell", [0.9], indirect=True)
def test_pause_abort_or_fault_mid_step_leave_the_cell_at_open_circuit(cell) -> None:
    sim, pstat = cell
    RE = RunEngine({})

    def charging_then(action):
        def plan():
            yield from bps.abs_set(pstat, ConstantCurrent(2e-5, 4.3, 1e5), group="cc")
            yield from bps.sleep(0.3)  # the step is running (cell on) by now
            yield from action()
            yield from bps.wait(group="cc")

        return open_circuit_on_exit(pstat, plan())

    # Ctrl-C-like pause, then abort
    mark = len(sim.log)
    with pytest.raises(RunEngineInterrupted):
        RE(charging_then(bps.pause))
    RE.abort("test abort")
    assert any(s["cell"] and s["mode"] == "cp" for s in states_since(sim, mark))
    state = wait_cell_off(sim)
    assert state["cell"] is False and state["mode"] == "ocp" and not pstat.client.busy

    # an exception in the plan mid-step
    def fault():
        raise RuntimeError("simulated fault in the plan")
        yield from bps.null()

    mark = len(sim.log)
    with pytest.raises(RuntimeError, match="simulated fault"):
        RE(charging_then(fault))
    assert any(s["cell"] for s in states_since(sim, mark))
    state = wait_cell_off(sim)
    assert state["cell"] is False and state["mode"] == "ocp" and not pstat.client.busy


@pytest.mark.parametrize("cell", [0.9], indirect=True)
def test_unplug_suspends_then_resumes_with_a_marked_gap(cell, caplog) -> None:
    sim, pstat = cell
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    timeout = 3600.0  # s of cell time: 1.8 s of wall time

    reasons: list[str] = []

    @bpp.run_decorator(md={"plan_name": "unplug_test"})
    def plan():
        def step():
            reasons.append(
                (yield from constant_current(pstat, 1e-5, until_voltage=4.35, timeout=timeout))
            )

        yield from recorded(pstat, step)

    # pull the cable once the step has run 600 s of cell time (an event, not a wall delay)
    unplugged: list[float] = []

    def unplug_at(value: float = 0.0, **kwargs: Any) -> None:
        if value >= 600.0 and not unplugged:
            unplugged.append(value)
            os.kill(sim.proc.pid, signal.SIGUSR1)

    pstat.cell_time.subscribe(unplug_at, run=False)
    RE(plan())
    assert unplugged and reasons == ["timeout"]
    err = caplog.text
    assert "SUSPENDED: pstat serial link" in err and "RESUMED" in err
    assert any(line.startswith("UNPLUGGED") for line in sim.log)
    rows = events(docs)
    modes = [r["data"]["pstat_mode"] for r in rows]
    assert modes.count("link_lost") == 1 and modes.count("link_restored") == 1
    lost = modes.index("link_lost")
    assert modes.index("link_restored") == lost + 1
    # (bluesky stamps collected events with the collection time; the package arrival
    # time, on the host clock like the frames', is in the readings' timestamps)
    stamp = [r["timestamps"]["pstat_voltage"] for r in rows]
    gap = stamp[lost + 1] - stamp[lost]
    assert gap >= 1.5  # the replug delay, marked by NaN rows on both sides

    def cc_times(part: list[dict]) -> list[float]:
        return [r["data"]["pstat_cell_time"] for r in part if r["data"]["pstat_mode"] == "cc"]

    first, second = cc_times(rows[:lost]), cc_times(rows[lost + 2 :])
    # the resumed step restarts its clock: total cell time of both parts ≈ the timeout
    assert first[-1] + second[-1] == pytest.approx(timeout, abs=30)
    # no other loss: within each part every 10 s package of the cell's clock is there
    for part in (first, second):
        # (one package per 10 s slot; at 2000x a late wake-up of the simulator shifts
        # a reading by a slot or so, then it catches up, so allow one slot either way)
        slots = round((part[-1] - part[0]) / 10.0) + 1
        assert part[0] < 30.0, part[:5]  # the first package of each part is there
        assert abs(len(part) - slots) <= 1 and np.all(np.diff(part) > 0)
