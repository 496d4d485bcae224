"""The simulated beamline's scan devices, connected, for the benchmarks."""

from __future__ import annotations

from typing import Any


def scan_devices(prefix: str, exposure: float) -> tuple[Any, Any, Any]:
    """(stage, detector, diode) on the IOC at ``prefix``, connected (10 s at most)."""
    from operando.devices.detector import StreamingDetector
    from operando.devices.monitor import beam_monitor
    from operando.devices.stage import TomoStage

    stage = TomoStage(prefix, name="stage")
    det = StreamingDetector(f"{prefix}det:", name="det", exposure=exposure)
    diode = beam_monitor(f"{prefix}diode")
    for dev in (stage, det, diode):
        dev.wait_for_connection(timeout=10)
    return stage, det, diode


def start_sim_ioc(n_x: int, step: float, name: str) -> tuple[Any, Any, Any, str]:
    """A CA repeater and the simulated IOC rendering an ``n_x``-pixel phantom of
    ``step`` mm, on a free port set in this process's environment.

    Returns (repeater, IOC, work folder, PV prefix).
    """
    import os
    import tempfile
    import uuid
    from pathlib import Path

    from operando.simulators import launcher
    from operando.simulators.phantom import default_phantom

    port = launcher.free_port()
    os.environ.update(launcher.ca_client_env(port))
    repeater = launcher.start_repeater(port)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    default_phantom(n_x, step).save(work / "phantom.h5")
    prefix = f"{name[0].upper()}{uuid.uuid4().hex[:6].upper()}:"
    ioc = launcher.start_ioc(prefix, port, work / "phantom.h5", work / "det.poni")
    return repeater, ioc, work, prefix
