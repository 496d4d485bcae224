"""Start the simulators as separate processes and stop them cleanly.

Each simulator prints one ``READY {json}`` line when it serves; :func:`start` waits for
it (with a timeout, showing the process's output if it dies) and returns the addresses.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocols.child_process import die_with_parent
from ..protocols.processing import ProcessingSettings


class SimulatorError(RuntimeError):
    """A simulator process that failed to start."""


def free_port() -> int:
    """A TCP port that is free on loopback now (UDP on the same number is checked too)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:  # the CA server needs TCP+UDP on port, its repeater UDP on port + 1
            for p in (port, port + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise SimulatorError("no free port on 127.0.0.1")


def ca_client_env(port: int) -> dict[str, str]:
    """Environment for a Channel Access client that talks only to the IOC on ``port``.

    The CA repeater of that IOC listens on ``port + 1`` (see :func:`start_ioc`).
    """
    return {
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_ADDR_LIST": f"127.0.0.1:{port}",
        "EPICS_CA_SERVER_PORT": str(port),
        "EPICS_CA_REPEATER_PORT": str(port + 1),
        "EPICS_CA_MAX_ARRAY_BYTES": "1000000",
    }


@dataclass
class SimProcess:
    """A running simulator process and what it announced."""

    name: str
    proc: subprocess.Popen
    info: dict[str, Any]
    log: deque = field(default_factory=lambda: deque(maxlen=200))
    pump: threading.Thread | None = None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        # the output pump ends at EOF; then its pipe is closed
        if self.pump is not None and self.pump is not threading.current_thread():
            self.pump.join(timeout)
        if self.proc.stdout is not None and (self.pump is None or not self.pump.is_alive()):
            self.proc.stdout.close()


def start(
    name: str,
    module: str,
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> SimProcess:
    """Run ``python -m module args`` and wait for its READY line."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        text=True,
        # own session: a terminal Ctrl-C reaches only the controlling program, which
        # then stops the plan safely and shuts these down in order
        start_new_session=True,
        # and should that program die without doing so (SIGKILL), they end with it
        preexec_fn=functools.partial(die_with_parent, os.getpid()),
    )
    sim = SimProcess(name, proc, {})
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY ") and not ready.is_set():
                sim.info = json.loads(line[6:])
                ready.set()
            else:
                sim.log.append(line.rstrip())
        ready.set()

    sim.pump = threading.Thread(target=pump, daemon=True, name=f"{name}-log")
    sim.pump.start()
    if not ready.wait(timeout) or not sim.info:
        sim.stop()
        tail = "\n".join(list(sim.log)[-20:])
        raise SimulatorError(f"simulator {name} did not start within {timeout:.0f} s:\n{tail}")
    return sim


def start_ioc(
    prefix: str,
    port: int,
    phantom: Path | None,
    poni: Path | None,
    x_ref: float = 0.98,
    artefacts: str = "",
    mount_offset: tuple[float, float] | None = None,
    saxs_poni: Path | None = None,
) -> SimProcess:
    """The beamline IOC (motors, diode, shutter, detector) on loopback ``port``.

    Its beacons go to the CA repeater on ``port + 1`` (:func:`start_repeater`).
    ``x_ref``: the lithium content the phantom was built at; ``artefacts``: the
    ``--artefacts`` list (:mod:`.artefacts`); ``mount_offset``: (u, v) mm of the
    sample off the centring stage's middle; ``poni``, ``saxs_poni``: where it writes
    the detector's geometry at the WAXS and SAXS distances.
    """
    args = ["--prefix", prefix, "--x-ref", str(x_ref)]
    if mount_offset is not None:
        args += ["--mount-offset", f"{mount_offset[0]:g},{mount_offset[1]:g}"]
    if artefacts:
        args += ["--artefacts", artefacts]
    if phantom:
        args += ["--phantom", str(phantom)]
    if poni:
        args += ["--poni", str(poni)]
    if saxs_poni:
        args += ["--saxs-poni", str(saxs_poni)]
    env = {
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CA_SERVER_PORT": str(port),
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CA_REPEATER_PORT": str(port + 1),
        # favour latency over batching: monitors go out as soon as they are posted
        "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC": "0.0005",
        "CAPROTO_SERVER_MAX_LATENCY_SEC": "0.002",
    }
    return start("ioc", "operando.simulators.ioc", args, env)


def start_potentiostat(
    time_factor: float,
    capacity_mah: float,
    soc: float,
    *,
    ioc: tuple[str, int] | None = None,
    replug_after: float = 2.0,
) -> SimProcess:
    """The serial potentiostat on a new pseudo-terminal.

    ``ioc``: (prefix, CA port) of the beamline IOC to wire its GPIO lines and the cell's
    lithium content to.
    """
    args = ["--time-factor", str(time_factor), "--capacity", str(capacity_mah), "--soc", str(soc)]
    args += ["--replug-after", str(replug_after)]
    env: dict[str, str] = {}
    if ioc is not None:
        args += ["--ioc-prefix", ioc[0]]
        env = ca_client_env(ioc[1])
    return start("potentiostat", "operando.simulators.potentiostat", args, env)


def start_repeater(port: int) -> SimProcess:
    """The CA repeater for the IOC on ``port`` (UDP ``port + 1``, loopback).

    Start it before the first Channel Access use in a process (ophyd starts libca at
    import), or libca tries to spawn a ``caRepeater`` of its own.
    """
    env = {"EPICS_CA_REPEATER_PORT": str(port + 1)}
    return start("repeater", "operando.simulators.repeater", [], env)


def start_processor(
    frames: str,
    results: str,
    out: Path,
    bins: int = 400,
    docs: str = "tcp://127.0.0.1:*",
    workers: int = 0,
    method: str = "mean",
    corrections: str | None = None,
    settings: ProcessingSettings | None = None,
    publish: str | None = None,
) -> SimProcess:
    """The live processor (``operando.live_processing.processor``) as its own process.

    ``settings``: its processing settings (``--settings-json``); ``bins``, ``workers``,
    ``method`` and ``corrections`` (a ``--corrections`` list) are given on top;
    ``publish``: the address its PUB socket binds (default any free loopback port).
    """
    args = [] if corrections is None else ["--corrections", corrections]
    if publish is not None:
        args += ["--publish", publish]
    if settings is not None:
        args += ["--settings-json", settings.to_json()]
    args += [
        "--method",
        method,
        "--workers",
        str(workers),
        "--frames",
        frames,
        "--results",
        results,
        "--out",
        str(out),
        "--bins",
        str(bins),
        "--docs",
        docs,
    ]
    return start("processor", "operando.live_processing.processor", args)


def start_viewer(publish: str, folder: Path, port: int = 0) -> SimProcess:
    """The live display (``operando view``) following ``publish`` and showing the runs
    written to ``folder``, on 127.0.0.1:``port`` (0: any free one); ``info["url"]``."""
    args = ["--live", publish, "--port", str(port), str(folder)]
    return start("viewer", "operando.live_processing.display.server", args)
