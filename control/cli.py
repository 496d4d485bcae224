"""The ``operando`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError


def _demo(args: argparse.Namespace) -> int:
    import os

    from ..simulators import launcher

    # Channel Access is set up before anything imports ophyd (which starts libca)
    port = launcher.free_port()
    os.environ.update(launcher.ca_client_env(port))
    repeater = launcher.start_repeater(port)
    try:
        from .config import load_config
        from .demo import run_demo

        cfg = load_config(args.config) if args.config else None
        run_demo(args.out, args.size, args.phantom, cfg, ca_port=port, protocol=args.protocol)
    finally:
        repeater.stop()
    return 0


def _sim(args: argparse.Namespace) -> int:
    import signal

    from ..simulators import launcher

    port = args.port or launcher.free_port()
    repeater = launcher.start_repeater(port)
    ioc = launcher.start_ioc(args.prefix, port, args.phantom, args.poni)
    pot = launcher.start_potentiostat(args.time_factor, 0.05, 0.98, ioc=(args.prefix, port))
    info = {"ioc": {**ioc.info, **launcher.ca_client_env(port)}, "potentiostat": pot.info}
    print(json.dumps(info, indent=2), flush=True)
    print("simulators running; Ctrl-C stops them", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        pot.stop()
        ioc.stop()
        repeater.stop()
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..live_processing.integrate import GeometryError, load_poni
    from .beamline import build
    from .config import load_config

    cfg = load_config(args.config)
    if cfg.detector.poni:
        try:
            ai = load_poni(cfg.detector.poni)
        except GeometryError as exc:
            raise ConfigError(str(exc)) from exc
        print(
            f"detector geometry: {cfg.detector.poni} "
            f"({ai.detector.max_shape}, {ai.wavelength * 1e10:.4f} Å)"
        )
    bl = build(cfg)
    try:
        print(
            f"EPICS: stage x={bl.stage.x.position:g} {bl.stage.x.egu}, "
            f"rot={bl.stage.rot.position:g} "
            f"{bl.stage.rot.egu}, diode={bl.diode.get():.4g}, detector {bl.det.model.get()}"
        )
        print(f"potentiostat: {bl.pstat.firmware.get()} on {bl.pstat.url}")
    finally:
        bl.destroy()
    print("beamline OK")
    return 0


def _process(args: argparse.Namespace) -> int:
    from ..live_processing.processor import main as processor_main

    processor_main(args.rest)
    return 0


def _integrate(args: argparse.Namespace) -> int:
    from ..live_processing.integrate import GeometryError
    from ..live_processing.offline import InputError, integrate_files

    try:
        written = integrate_files(
            args.files,
            args.poni,
            args.bins,
            args.out,
            method=args.method,
            mask_file=args.mask,
            polarization=args.polarization,
        )
    except (GeometryError, InputError) as exc:
        raise ConfigError(str(exc)) from exc
    for path in written[:5]:
        print(path)
    if len(written) > 5:
        print(f"... and {len(written) - 5} more in {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="operando", description="Operando battery XRD-CT on bluesky")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a whole operando experiment on the built-in simulators")
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
    d.add_argument("--phantom", type=Path, help="phantom HDF5 file (ground_truth layout)")
    d.add_argument("--config", type=Path, help="beamline TOML (default: the simulated beamline)")
    d.set_defaults(func=_demo)
    s = sub.add_parser("sim", help="start the simulated beamline and print its addresses")
    s.add_argument("--prefix", default="SIM:")
    s.add_argument("--port", type=int, default=0, help="Channel Access port (default: a free one)")
    s.add_argument("--phantom", type=Path)
    s.add_argument("--poni", type=Path, default=Path("detector.poni"))
    s.add_argument("--time-factor", type=float, default=1.0)
    s.set_defaults(func=_sim)
    c = sub.add_parser("check", help="connect to the beamline of a config file and report")
    c.add_argument("--config", type=Path, required=True)
    c.set_defaults(func=_check)
    i = sub.add_parser(
        "integrate",
        help="integrate detector image files (CBF, EDF, TIFF, HDF5) with a PONI geometry",
        description="Integrate every frame of FILE... into q bins with the live engines. "
        "Masked: the detector's mask, --mask, and every pixel < 0. Solid-angle correction "
        "on; polarisation only with --polarization. Text output: q, I, sigma columns.",
    )
    i.add_argument("files", nargs="+", type=Path, metavar="FILE")
    i.add_argument("--poni", type=Path, required=True, help="pyFAI PONI geometry file")
    i.add_argument("--bins", type=int, default=2000, help="number of q bins (default 2000)")
    i.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output: NAME.h5/.hdf5/.nxs for HDF5, else a text file (one frame) or folder",
    )
    i.add_argument("--method", choices=["mean", "trimmed", "sigmaclip"], default="mean")
    i.add_argument("--mask", type=Path, help="mask image (non-zero = masked), any fabio format")
    i.add_argument(
        "--polarization", type=float, help="polarisation factor in [-1, 1] (default: none)"
    )
    i.set_defaults(func=_integrate)
    pr = sub.add_parser("process", help="run the live processor (see --help of the module)")
    pr.add_argument("rest", nargs=argparse.REMAINDER)
    pr.set_defaults(func=_process)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"operando: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("operando: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
