"""``operando demo``: a whole operando XRD-CT experiment on the simulated beamline.

Starts the IOC (stage, diode, shutter, detector streaming from a phantom), the serial
potentiostat on a pty (its GPIO lines and the cell's lithium content wired to the IOC,
so the phantom's lattice follows the charge) and the live processor, each as its own
process; builds the devices through their real protocols and runs a protocol:

- ``minimal`` (default): OCV → XRD-CT → charge at C/3 → OCV → XRD-CT → resume;
- ``holotomo``: the seed-002 flowchart (CC/CV charge, discharge, scans on timeouts and
  thresholds, two scans at the end) from a half-charged cell, with small scans.

One NeXus file per scan; the paths are printed last.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from bluesky.utils import RunEngineInterrupted

from ..materials.phases import get_phase
from ..protocols.processing import METHODS
from ..simulators import launcher
from ..simulators.artefacts import ArtefactError, Artefacts
from .beamline import build
from .config import BeamlineConfig
from .demo_plan import (
    CAPACITY_MAH,
    INITIAL_X,
    PROTOCOLS,
    SCANS,
    SIZES,
    corrections_for,
    demo_plan,
    margin,
    prepare_phantom,
    scan_mode,
)
from .errors import ConfigError
from .progress import RunSummary
from .session import make_run_engine
from .spool import DocumentSpool
from .store_process import StoreLink
from .supervisor import SupervisedProcessor, wait_for_files

log = logging.getLogger("operando.demo")

TIME_FACTOR = 600.0  # simulated cell time per wall second


@dataclass
class DemoResult:
    """What the demo made: scan files by run uid, and every run for the summary table."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: RunSummary = field(default_factory=RunSummary)
    store: StoreLink | None = None  # the run store's writer, closed (None: no store)

    @property
    def paths(self) -> list[Path]:
        return list(self.files.values())


class DemoFailedError(RuntimeError):
    """The plan failed (a lost IOC, a limit): its cleanup put the cell at open circuit;
    ``result`` holds what was kept, ``error`` why."""

    def __init__(self, result: DemoResult, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.result, self.error = result, error


class DemoInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the demo: the plan was aborted safely; ``result`` holds what was kept."""

    def __init__(self, result: DemoResult) -> None:
        super().__init__("interrupted")
        self.result = result


def run_demo(
    out: Path,
    size_name: str = "small",
    phantom_file: Path | None = None,
    cfg: BeamlineConfig | None = None,
    ca_port: int | None = None,
    protocol: str = "minimal",
    artefacts: str = "",
    method: str | None = None,
    corrections: str | None = None,
    view_port: int | None = 0,
    scan: str = "xrdct",
    mode: str | None = None,
) -> DemoResult:
    """Run the demo experiment; return the scans' NeXus files and the runs' summary.

    ``ca_port``: the Channel Access port already set up in this process's environment
    (with its repeater running); by default a free one is chosen here. Ctrl-C aborts the
    plan (the cell goes to open circuit), waits for the processor to write what was
    acquired, and raises :class:`DemoInterrupted` with it.

    ``artefacts``: what the simulator adds (:mod:`..simulators.artefacts`); the scans
    then extend :func:`margin` steps beyond the sample on each side, and the
    processor's ``corrections`` default to those the artefacts call for
    (:func:`corrections_for`). ``method``: the processor's integration.
    ``view_port``: the live display's port on 127.0.0.1 (0: any free one; None: no
    display); its URL is logged. ``scan``: ``xrdct``, or ``tomo`` (full-field scans on
    the simulated camera; with the ``holotomo`` protocol, seed 002's). ``mode``: the
    XRD-CT scans' ``step`` or ``fly`` (default: :func:`.demo_plan.scan_mode`).
    """
    t_start = time.monotonic()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if scan not in SCANS or (scan == "tomo" and protocol != "holotomo"):
        raise ConfigError(
            f"--scan {scan}: use xrdct, or tomo with --protocol holotomo (seed 002's "
            "full-field scans)"
        )
    cfg = cfg or BeamlineConfig()
    try:
        art = Artefacts.parse(artefacts)
    except ArtefactError as exc:
        raise ConfigError(f"--artefacts: {exc}") from None
    mode = scan_mode(mode, art)
    method = method or cfg.processing.settings.method
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    corrections = corrections if corrections is not None else corrections_for(art)
    size = SIZES[size_name]
    out.mkdir(parents=True, exist_ok=True)
    phantom_path, ph = prepare_phantom(out, size, phantom_file)
    n = ph.shape[0]
    if not cfg.processing.settings.qscreen:  # the demo's sample: its major phases mapped
        major = tuple(k for k, f in ph.fraction.items() if f.max() >= 0.5)
        cfg.processing.settings = cfg.processing.settings.with_options(qscreen=major)
    if not cfg.processing.settings.lattice:  # and its crystalline phases' lattice maps
        cubic = tuple(k for k in ph.fraction if get_phase(k).crystalline)
        cfg.processing.settings = cfg.processing.settings.with_options(lattice=cubic)
    poni = out / "detector.poni"
    port = ca_port or launcher.free_port()
    prefix = f"OPD{uuid.uuid4().hex[:6].upper()}:"
    os.environ.update(launcher.ca_client_env(port))
    cfg.epics.prefix = prefix
    cfg.detector.exposure = size.exposure
    cfg.detector.raw = str((out / "raw").resolve())  # every frame, whatever the processor does
    cfg.potentiostat.sample_interval = 30.0  # s of cell time: 20 packages per wall second
    if art.absorption:
        cfg.epics.transmission = "diode_t"
    if scan == "tomo":
        cfg.epics.camera = "ffcam:"
    procs: list[launcher.SimProcess] = []
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    results_addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
    beamline = None
    supervisor: SupervisedProcessor | None = None
    result = DemoResult(out)
    try:
        log.info(
            "operando demo: %d x %d phantom of %g mm pixels, %s", n, n, ph.pixel_size, phantom_path
        )
        log.info("  starting simulators (IOC, potentiostat) and the live processor ...")
        soc = INITIAL_X[protocol]
        factor = TIME_FACTOR if protocol == "minimal" else 2 * TIME_FACTOR
        # a lease is instrument time: on this accelerated instrument, one wall minute
        cfg.potentiostat.lease = 60.0 * factor
        if art.any:
            log.info("  artefacts: %s; corrections: %s; integration: %s", art, corrections, method)
        ioc = launcher.start_ioc(prefix, port, phantom_path, poni, x_ref=0.98, artefacts=str(art))
        procs.append(ioc)
        pot = launcher.start_potentiostat(factor, CAPACITY_MAH, soc, ioc=(prefix, port))
        procs.append(pot)
        spool = DocumentSpool(out / "documents")
        if not cfg.store.off:  # the run store's writer; the store starts meanwhile
            result.store = StoreLink(out, cfg.store.uri, cfg.store.api_key)

        # one publish address for every processor the supervisor may start, so the
        # display follows a restarted one
        publish = f"tcp://127.0.0.1:{launcher.free_port()}"

        def start_processor() -> launcher.SimProcess:
            return launcher.start_processor(
                ioc.info["stream"],
                results_addr,
                out,
                cfg.processing.settings.bins,
                cfg.processing.docs,
                workers=cfg.processing.settings.workers,
                method=method,
                corrections=corrections,
                settings=cfg.processing.settings,
                publish=publish,
            )

        supervisor = SupervisedProcessor(start_processor, results, spool)
        log.info("  live processor: pid %d", supervisor.pid)
        if view_port is not None:
            viewer = launcher.start_viewer(publish, out, view_port)
            procs.append(viewer)
            log.info("  live view: %s (open it in a browser)", viewer.info["url"])
        beamline = build(cfg, potentiostat_url=pot.info["port"])
        if beamline.camera is not None:  # its frames kept too
            beamline.camera.raw_folder.put(cfg.detector.raw)
        log.info(
            "  connected: IOC %s on 127.0.0.1:%d, potentiostat %s (%s)",
            prefix,
            port,
            pot.info["port"],
            beamline.pstat.firmware.get(),
        )
        ioc_watch = (beamline.connection, cfg.epics.ioc_timeout) if beamline.connection else None
        RE = make_run_engine(supervisor, spool=spool, ioc=ioc_watch)
        RE.subscribe(result.summary)
        if result.store is not None:
            RE.subscribe(result.store)
        plan = demo_plan(
            beamline, ph, size, phantom_file, phantom_path, poni, protocol, margin(art, ph), scan,
            mode,
        )  # fmt: skip
        try:
            RE(plan)
        except RunEngineInterrupted:
            # Ctrl-C paused the plan: abort it, so its cleanup puts the cell at open
            # circuit and the open runs close (the processor writes what it has)
            log.warning("  interrupted: aborting the plan, cell to open circuit ...")
            RE.abort("interrupted by the user")
            collect_files(supervisor, result)
            raise DemoInterrupted(result) from None
        except Exception as exc:  # the plan failed: its cleanup has run (open circuit)
            log.debug("the plan failed", exc_info=True)
            collect_files(supervisor, result)
            raise DemoFailedError(result, exc) from exc
        collect_files(supervisor, result)
        log.info("done in %.0f s: %d scan files", time.monotonic() - t_start, len(result.files))
        if view_port is not None:
            log.info("  to look at them again: operando view %s", out)
        return result
    finally:
        if result.store is not None:  # it finishes while the rest stops
            result.store.finish(result.files)
        if supervisor is not None:
            supervisor.close()
        if beamline is not None:
            beamline.destroy()
            close_channel_access()
        for p in reversed(procs):
            p.stop()
        ctx.destroy(linger=0)
        if result.store is not None:
            result.store.wait()


def collect_files(supervisor: SupervisedProcessor, result: DemoResult) -> None:
    """Wait until the processor has written a file for every scan run that started."""
    try:
        early = supervisor.flush()  # every document sent so far is handled
        scans = [uid for uid, row in result.summary.rows.items() if row.scan]
        wait_for_files(supervisor.receive, scans, result.files, timeout=120.0, early=early)
    except ConfigError:
        log.error("%s", "\n".join(list(supervisor.proc.log)[-30:]))
        raise


def close_channel_access() -> None:
    """Close this process's CA channels before the IOC goes (no disconnect warnings)."""
    import epics

    epics.ca.finalize_libca(maxtime=2.0)
