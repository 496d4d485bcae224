"""Shared fixtures: simulators started once per session as separate processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from fault_table import (  # noqa: F401 (the fault table's fixture and hooks, for every test)
    fault_table,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

from operando.simulators import launcher

# One Channel Access port for the whole session: libca reads its address list once.
CA_PORT = launcher.free_port()
os.environ.update(launcher.ca_client_env(CA_PORT))
# The repeater must run before libca starts (ophyd starts it when test modules import it).
_REPEATER = launcher.start_repeater(CA_PORT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _REPEATER.stop()


@pytest.fixture(scope="session")
def ioc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.SimProcess]:
    """The beamline IOC (default phantom) with a random PV prefix, on loopback."""
    poni = tmp_path_factory.mktemp("ioc") / "detector.poni"
    prefix = f"T{uuid.uuid4().hex[:6].upper()}:"
    sim = launcher.start_ioc(prefix, CA_PORT, None, poni)
    sim.info["poni"] = str(poni)
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def pstat_sim() -> Iterator[launcher.SimProcess]:
    """The MethodSCRIPT potentiostat on a pty, 600x time acceleration."""
    sim = launcher.start_potentiostat(600.0, 0.05, 0.98)
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def beamline(ioc: launcher.SimProcess, pstat_sim: launcher.SimProcess) -> Iterator[object]:
    """Devices connected to the simulators through CA and the pty."""
    from operando.control.beamline import build
    from operando.control.config import BeamlineConfig

    cfg = BeamlineConfig()
    cfg.epics.prefix = ioc.info["prefix"]
    cfg.detector.exposure = 0.002
    cfg.potentiostat.sample_interval = 10.0
    cfg.potentiostat.lease = 60.0 * 600  # one wall minute of the 600x instrument
    bl = build(cfg, potentiostat_url=pstat_sim.info["port"])
    yield bl
    bl.destroy()


@pytest.fixture(scope="session")
def poni_file(ioc: launcher.SimProcess) -> Path:
    return Path(ioc.info["poni"])


@pytest.fixture(scope="session")
def ca_port() -> int:
    """The Channel Access port of the session's IOC."""
    return CA_PORT


@pytest.fixture()
def processor(ioc: launcher.SimProcess, tmp_path: Path) -> Iterator[tuple[Any, zmq.Socket]]:
    """A live processor on the session IOC's stream, writing into ``tmp_path``."""
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
    proc = launcher.start_processor(ioc.info["stream"], addr, tmp_path, bins=200)
    yield proc, results
    proc.stop()
    ctx.destroy(linger=0)


def _wait_written(results: zmq.Socket, timeout_ms: int = 60000) -> dict:
    while results.poll(timeout_ms):
        msg = results.recv_json()
        if msg["event"] in ("written", "error"):
            return msg
    raise AssertionError("processor wrote no file")


@pytest.fixture()
def wait_written() -> Any:
    """A function: the processor's next 'written' (or 'error') report from a results socket."""
    return _wait_written
