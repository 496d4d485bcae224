"""Seed 001's analog-trigger coupling, the never-sent refusal, and the script parser."""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Iterator

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import RunEngine
from hypothesis import given, settings
from hypothesis import strategies as st
from ophyd import EpicsSignal

from operando.devices.potentiostat import (
    ConstantCurrent,
    ConstantVoltage,
    Potentiostat,
    SafetyLimitError,
    TriggeredDischarge,
)
from operando.devices.trigger import TriggerLines
from operando.plans.electrochemistry import recorded
from operando.plans.triggered import triggered_protocol
from operando.protocols import methodscript as ms
from operando.simulators import launcher
from operando.simulators.lithiation import lithiate, spinel_state
from operando.simulators.methodscript_vm import parse_script
from operando.simulators.phantom import default_phantom

ONE_C = 0.05 * 3.6 / 3600


@pytest.fixture()
def wired(ioc, ca_port) -> Iterator[tuple[launcher.SimProcess, Potentiostat, TriggerLines]]:
    """A potentiostat whose GPIO lines are wired to the session IOC's trigger PVs."""
    prefix = ioc.info["prefix"]
    sim = launcher.start_potentiostat(2000.0, 0.05, 0.3, ioc=(prefix, ca_port))
    pstat = Potentiostat(sim.info["port"], name="pstat", sample_interval=10.0)
    pstat.connect()
    lines = TriggerLines(prefix, name="trigger")
    lines.wait_for_connection(timeout=10)
    yield sim, pstat, lines
    pstat.destroy()
    sim.stop()
    cell_x = EpicsSignal(f"{prefix}cell:x", name="cell_x")
    cell_x.wait_for_connection(timeout=10)
    cell_x.put(float("nan"), wait=True)  # the IOC renders the phantom as built again


def test_each_pause_trigger_starts_a_scan(wired) -> None:
    _sim, pstat, lines = wired
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    levels_during_scans: list[int] = []

    def scan(md):
        @bpp.run_decorator(md={"plan_name": "stub_scan", **md})
        def inner():
            levels_during_scans.append(int(lines.trig_in.get()))
            yield from recorded(pstat, lambda: bps.sleep(0.05))

        yield from inner()

    program = TriggeredDischarge(
        current=-ONE_C / 6, v_min=3.0, segment=1800.0, max_pauses=3, pause_timeout=36000.0
    )
    result = RE(triggered_protocol(pstat, lines, scan, program, trigger_timeout=30.0)).plan_result
    assert result.scans == [
        (1, "pause", "trigger"),
        (2, "pause", "trigger"),
        (3, "pause", "trigger"),
    ]
    assert [t[0] for t in result.transitions] == [
        "triggered_discharge",
        "scan",
        "scan",
        "scan",
        "done",
    ]
    assert levels_during_scans == [1, 1, 1]  # the cell was paused (line high) for each scan
    # the instrument discharged between pauses and rested at open circuit during scans
    ec = [
        (d["timestamps"]["pstat_voltage"], d["data"]["pstat_current"])
        for n, d in docs
        if n == "event_page"
        for d in __import__("event_model").unpack_event_page(d)
        if "pstat_current" in d["data"]
    ]
    currents = np.array([c for _, c in ec])
    assert (currents < 0).any()
    scan_times = [
        (d["time"], None) for n, d in docs if n == "start" and d["plan_name"] == "stub_scan"
    ]
    assert len(scan_times) == 3
    assert lines.trig_out.get() == 0 and lines.trig_in.get() == 0
    assert not pstat.client.busy


def test_trigger_timeout_fails_the_plan_and_leaves_open_circuit(wired) -> None:
    _sim, pstat, lines = wired
    RE = RunEngine({})
    # pauses come every 1e5 s of cell time (50 s wall): the 1 s trigger timeout expires
    program = TriggeredDischarge(
        current=-ONE_C / 100, v_min=3.0, segment=1e5, max_pauses=2, pause_timeout=100.0
    )

    def scan(md):
        yield from bps.null()

    with pytest.raises(TimeoutError, match="pause trigger from the potentiostat"):
        RE(triggered_protocol(pstat, lines, scan, program, trigger_timeout=1.0))
    deadline = time.monotonic() + 5
    while pstat.client.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pstat.client.busy and pstat.mode.get() == "ocp"


class _FakeInstrument:
    """The other end of a pty: answers ``t`` and records every byte it receives."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select

        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                continue
            self.received += chunk
            if chunk.endswith(b"t\n"):
                os.write(self.master, b"tEmStat4 fake\nR\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)


def test_refused_commands_never_reach_the_serial_line() -> None:
    inst = _FakeInstrument()
    pstat = Potentiostat(inst.path, name="pstat", v_window=(3.0, 4.3), i_max=1e-4)
    pstat.connect()
    try:
        assert inst.received == b"t\n"
        bad = [
            ConstantCurrent(5e-6, until_voltage=4.5, timeout=60),
            ConstantCurrent(2e-4, until_voltage=4.2, timeout=60),
            ConstantVoltage(2.9, until_current=1e-6, timeout=60),
            ConstantVoltage(4.2, until_current=1e-3, timeout=60),
            ConstantCurrent(5e-6, until_voltage=4.2, timeout=-1),
            TriggeredDischarge(-5e-6, v_min=2.0, segment=60, max_pauses=2, pause_timeout=60),
        ]
        for step in bad:
            with pytest.raises(SafetyLimitError, match=r"pstat: .*\d"):
                pstat.set(step)
        time.sleep(0.3)
        assert inst.received == b"t\n"  # not one byte of any refused script
    finally:
        pstat.destroy()
        inst.close()


def test_safety_error_names_value_and_limit() -> None:
    inst = _FakeInstrument()
    pstat = Potentiostat(inst.path, name="cell1", v_window=(3.0, 4.3), i_max=1e-4)
    pstat.connect()
    try:
        with pytest.raises(SafetyLimitError) as err:
            pstat.set(ConstantCurrent(5e-6, until_voltage=4.5, timeout=60))
        assert "cell1" in str(err.value) and "4.5 V" in str(err.value)
        assert "[3, 4.3] V" in str(err.value)
    finally:
        pstat.destroy()
        inst.close()


def test_every_script_we_send_parses_in_the_instrument() -> None:
    scripts = [
        ms.ocp_script(1.0, 60.0),
        ms.cp_script(1e-5, 1.0, 60.0, 4.2),
        ms.cp_script(-1e-5, 1.0, 60.0, 3.0),
        ms.ca_script(4.2, 1.0, 60.0, 1e-6),
        ms.triggered_discharge_script(-8e-6, 3.0, 600.0, 10.0, 5, 3600.0),
    ]
    for text in scripts:
        lines = text.split("\n")
        assert lines[0] == "e" and text.endswith("\n\n")
        parsed = parse_script([ln for ln in lines[1:] if ln])
        assert parsed.on_finished, "every script switches the cell off in on_finished"


@settings(max_examples=300, deadline=500)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "var p",
                    "var c",
                    "loop p < 3i",
                    "if c >= 1u",
                    "else",
                    "endif",
                    "endloop",
                    "breakloop",
                    "meas_loop_cp p c 1u 100m 1",
                    "meas_loop_ocp p 1 1",
                    "store_var p 0x2i ja",
                    "bit_and_var p 3i",
                    "set_gpio 1i",
                    "on_finished:",
                    "cell_off",
                ]
            ),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789 -:xi", max_size=30),
        ),
        max_size=25,
    )
)
def test_script_parser_fuzz_refuses_clearly(lines: list[str]) -> None:
    try:
        parse_script(lines)
    except ms.MethodScriptError as exc:
        assert str(exc).startswith("Line ")


def test_lattice_follows_lithium_with_lever_rule() -> None:
    assert spinel_state(1.0) == (1.0, pytest.approx(8.25), pytest.approx(8.25))
    assert spinel_state(0.0)[1] == pytest.approx(8.03)
    f, a_rich, a_poor = spinel_state(0.325)  # middle of the 0.20-0.45 window
    assert f == pytest.approx(0.5) and a_rich == pytest.approx(8.145) and a_poor == 8.076
    base = default_phantom(24, 0.05)
    charged = lithiate(base, 0.8, x_ref=0.98)
    sel = base.fraction["LiMn2O4"] > 0
    shift = charged.lattice_a["LiMn2O4"][sel] - base.lattice_a["LiMn2O4"][sel]
    assert np.allclose(shift, shift[0]) and shift[0] < -0.015  # offsets kept, lattice shrinks
    two = lithiate(base, 0.3, x_ref=0.98)
    total = two.fraction["LiMn2O4"] + two.fraction["Li0.2Mn2O4"]
    assert np.allclose(
        total[sel], base.fraction["LiMn2O4"][sel] + base.fraction.get("Li0.2Mn2O4", 0)
    )
    assert (two.fraction["Li0.2Mn2O4"][sel] > 0).all()
