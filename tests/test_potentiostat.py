"""The potentiostat driver against the MethodSCRIPT simulator on a real pty."""

import threading

import pytest

from operando.devices.methodscript_client import PotentiostatError
from operando.devices.potentiostat import OCV, ConstantCurrent, Potentiostat, SafetyLimitError
from operando.simulators import launcher


@pytest.fixture(scope="module")
def own_sim():
    """A potentiostat of this module's own (the session's is held by the beamline)."""
    sim = launcher.start_potentiostat(600.0, 0.05, 0.98)
    yield sim
    sim.stop()


@pytest.fixture()
def pstat(own_sim):
    p = Potentiostat(own_sim.info["port"], name="pstat", sample_interval=10.0)
    p.connect()
    yield p
    p.destroy()


def test_port_is_locked_against_a_second_client(pstat, own_sim) -> None:
    with pytest.raises(PotentiostatError, match=own_sim.info["port"]):
        Potentiostat(own_sim.info["port"], name="intruder").connect()


def test_identify(pstat) -> None:
    assert "MethodSCRIPT" in pstat.firmware.get()


def test_constant_current_ends_at_voltage_limit(pstat) -> None:
    st = pstat.set(ConstantCurrent(5e-5, until_voltage=4.0, timeout=7200.0))
    st.wait(30)
    assert st.reason == "voltage_limit"
    assert pstat.voltage.get() >= 4.0
    st = pstat.set(ConstantCurrent(-5e-5, until_voltage=3.9, timeout=60.0))
    st.wait(30)
    assert st.reason == "timeout"


def test_out_of_window_command_is_refused_and_not_sent(pstat) -> None:
    with pytest.raises(SafetyLimitError, match=r"4\.6 V is outside the window \[2\.5, 4\.4\] V"):
        pstat.set(ConstantCurrent(1e-5, until_voltage=4.6, timeout=10))
    with pytest.raises(SafetyLimitError, match="exceeds the limit"):
        pstat.set(ConstantCurrent(5e-3, until_voltage=4.2, timeout=10))
    assert not pstat.client.busy


def test_stop_leaves_open_circuit_and_log_is_collected(pstat) -> None:
    running = threading.Event()
    pstat.cell_time.subscribe(lambda value, **kw: running.set() if value >= 30 else None, run=False)
    pstat.kickoff()
    st = pstat.set(ConstantCurrent(2e-5, until_voltage=4.3, timeout=1e5))
    assert running.wait(10)
    pstat.stop()
    st.wait(5)
    assert st.reason == "aborted"
    assert pstat.mode.get() == "ocp" and not pstat.client.busy
    rows = list(pstat.collect())
    assert rows and all(
        set(r["data"]) == {"pstat_voltage", "pstat_current", "pstat_cell_time", "pstat_mode"}
        for r in rows
    )
    st = pstat.set(OCV(20.0))
    st.wait(10)
    assert st.reason == "done" and pstat.current.get() == 0.0
