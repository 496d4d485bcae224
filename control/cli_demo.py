"""``operando demo``'s command line: its options and its run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..live_processing.options import METHODS

ARTEFACT_HELP = (
    "axis_offset=MM, air[=LEVEL], decay[=PERIOD], spots[=SHARE], zingers=RATE, "
    "jitter=MM, absorption[=SCALE]"
)


def add_demo_command(sub: Any) -> None:
    """Add ``demo`` to ``sub``."""
    d = sub.add_parser(
        "demo",
        help="run a whole operando experiment on the built-in simulators",
        description="Start the simulated beamline (IOC, serial potentiostat, detector "
        "stream) and the live processor, run an operando protocol, and print a summary "
        "table and the scan files. Ctrl-C aborts safely: cell to open circuit, what was "
        "acquired written.",
    )
    d.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)"
    )
    d.add_argument(
        "--size",
        choices=["micro", "tiny", "small", "medium"],
        default="small",
        help="micro (8 x 6) and tiny (16 x 12) are for tests; small (40 x 40) is the "
        "default demo; medium (64 x 64) is larger",
    )
    d.add_argument(
        "--protocol",
        choices=["minimal", "holotomo"],
        default="minimal",
        help="minimal: XRD-CT before and after a C/3 charge; holotomo: the seed-002 "
        "CC/CV/discharge flowchart with a scan at every timeout and threshold",
    )
    d.add_argument(
        "--scan",
        choices=["xrdct", "tomo"],
        default="xrdct",
        help="the protocol's scans: pencil-beam XRD-CT, or full-field absorption tomography "
        "on the simulated camera (with --protocol holotomo: seed 002)",
    )
    d.add_argument(
        "--mode",
        choices=["step", "fly"],
        help="how the XRD-CT scans move: fly (rows swept with the detector on the stage's "
        "position-compare pulses; the default) or step (point by point; the default with "
        "--artefacts absorption, whose transmission diode is read at every point)",
    )
    d.add_argument("--phantom", type=Path, help="phantom HDF5 file (ground_truth layout)")
    d.add_argument("--config", type=Path, help="beamline TOML (default: the simulated beamline)")
    d.add_argument(
        "--artefacts",
        default="",
        metavar="LIST",
        help=f"what real data has, comma-separated name or name=value: {ARTEFACT_HELP}; "
        "the scans then extend beyond the sample and the matching corrections are on",
    )
    d.add_argument(
        "--method",
        choices=METHODS,
        help="the processor's integration: mean, 10 %% trimmed mean (zingers, spots) or "
        "sigma clipping (default: the config's, else mean)",
    )
    d.add_argument(
        "--corrections",
        metavar="LIST",
        help="the processor's sinogram corrections in order (default: normalise, "
        "rotation_centre, and those the artefacts call for)",
    )
    d.add_argument(
        "--view-port",
        type=int,
        default=0,
        help="port of the live display on 127.0.0.1 (default: any free one; its URL is printed)",
    )
    d.add_argument("--no-view", action="store_true", help="do not start the live display")
    d.add_argument(
        "--no-store",
        action="store_true",
        help="do not write the runs to the run store (Tiled); the spool keeps them",
    )
    d.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import os

    from ..simulators import launcher
    from .cli import stop_on_terminate

    stop_on_terminate()

    # Channel Access is set up before anything imports ophyd (which starts libca)
    port = launcher.free_port()
    os.environ.update(launcher.ca_client_env(port))
    repeater = launcher.start_repeater(port)
    try:
        from .config import load_config
        from .demo import DemoFailedError, DemoInterrupted, run_demo

        cfg = load_config(args.config) if args.config else None
        if args.no_store:
            from .config import BeamlineConfig

            cfg = cfg or BeamlineConfig()
            cfg.store.uri = "off"
        try:
            result = run_demo(
                args.out,
                args.size,
                args.phantom,
                cfg,
                ca_port=port,
                protocol=args.protocol,
                artefacts=args.artefacts,
                method=args.method,
                corrections=args.corrections,
                view_port=None if args.no_view else args.view_port,
                scan=args.scan,
                mode=args.mode,
            )
        except DemoInterrupted as stop:
            kept = ", ".join(p.name for p in stop.result.paths) or "no scan file"
            print(
                "operando: interrupted: the plan was aborted and the cell put to open circuit; "
                f"kept {kept} in {stop.result.out}",
                file=sys.stderr,
            )
            return 130
        except DemoFailedError as failed:
            kept = ", ".join(p.name for p in failed.result.paths) or "no scan file"
            print(
                f"operando: the plan failed: {failed}; the cell was put to open circuit; "
                f"kept {kept} in {failed.result.out} (-v for the traceback)",
                file=sys.stderr,
            )
            return 1
    finally:
        repeater.stop()
    print(result.summary.table(result.files))
    if result.store is not None:
        from .cli_store import store_summary

        print(store_summary(result.store, args.out))
    print(f"output folder {args.out}: phantom.h5, detector.poni, ground_truth/, scan files:")
    for path in result.paths:
        print(path)
    return 0
