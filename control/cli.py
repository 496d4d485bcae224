"""The ``operando`` command line.

Each sub-command is a thin wrapper: it parses, sets up logging (progress and messages on
stderr), runs, and prints its result on stdout. Errors we expect (bad configuration,
input, files) are one ``operando: error: …`` line and exit status 2; Ctrl-C is one line
and 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..live_processing.options import METHODS, add_processor_arguments
from .cli_analysis import add_analysis_commands
from .cli_demo import ARTEFACT_HELP, add_demo_command
from .cli_store import add_store_commands
from .errors import ConfigError
from .sim import mount_offset

log = logging.getLogger("operando")


def setup_logging(verbose: bool = False) -> None:
    """Messages of every ``operando`` logger on stderr, plainly; library chatter off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    # these log what we report ourselves (aborts, suspensions, bad files) with tracebacks or
    # whole lists (pyFAI prints every detector it knows for an unknown name)
    for name in ("bluesky", "ophyd", "caproto", "pyFAI", "silx", "fabio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def stop_on_terminate() -> None:
    """SIGTERM and SIGHUP stop this command as Ctrl-C does: the plan is stopped safely
    (cell at open circuit, data written) and every child process is stopped."""
    import os
    import signal

    def as_interrupt(signum: int, frame: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, as_interrupt)


def _sim(args: argparse.Namespace) -> int:
    from .sim import run_sim

    stop_on_terminate()

    a = args
    return run_sim(a.dir, a.prefix, a.port, a.phantom, a.time_factor, a.artefacts, a.mount_offset)


def _check(args: argparse.Namespace) -> int:
    from ..live_processing.integration.integrate import GeometryError, load_poni
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
            f"EPICS: stage x={bl.stage.x.position:.4f} {bl.stage.x.egu}, "
            f"rot={bl.stage.rot.position:.4f} "
            f"{bl.stage.rot.egu}, diode={bl.diode.get():.4g}, detector {bl.det.model.get()}"
        )
        print(f"potentiostat: {bl.pstat.firmware.get()} on {bl.pstat.url}")
    finally:
        bl.destroy()
    print("beamline OK")
    return 0


def _process(args: argparse.Namespace) -> int:
    from ..live_processing.processor import serve

    serve(args)
    return 0


def _integrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..live_processing.integration.integrate import GeometryError
    from ..live_processing.integration.offline import InputError, count_frames, integrate_files

    try:
        total = sum(count_frames(f) for f in args.files)
        with tqdm(total=total, unit="frame", file=sys.stderr, disable=None) as bar:
            written = integrate_files(
                args.files,
                args.poni,
                args.bins,
                args.out,
                method=args.method,
                mask_file=args.mask,
                polarization=args.polarization,
                on_frame=lambda path, k: bar.update(),
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
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    sub = p.add_subparsers(dest="command", required=True)
    add_demo_command(sub)
    s = sub.add_parser(
        "sim",
        help="start the simulated beamline and print how to script against it",
        description="Start the simulated beamline: a caproto IOC (stage x/rot/z, beam "
        "monitor diode, shutter, trigger lines, detector cam) on a loopback Channel Access "
        "port with its CA repeater, the detector's Stream V2 ZMQ socket, and a MethodSCRIPT "
        "potentiostat on a pseudo-terminal. Writes detector.poni, beamline.toml and env.sh "
        "into its folder and prints the shell lines to paste into another terminal. "
        "Ctrl-C stops it.",
    )
    s.add_argument(
        "--dir",
        type=Path,
        help="folder for detector.poni, beamline.toml, env.sh and the ground truth "
        "(default: a new folder operando-sim-* in the system's temporary directory; "
        "an existing file there is never overwritten)",
    )
    s.add_argument(
        "--prefix", default="SIM:", help="PV prefix of every simulated device (default SIM:)"
    )
    s.add_argument(
        "--port",
        type=int,
        default=0,
        help="Channel Access server port on 127.0.0.1; the CA repeater takes port + 1 "
        "(default: a free pair)",
    )
    s.add_argument(
        "--phantom", type=Path, help="phantom HDF5 file to render frames from (default: a cell)"
    )
    s.add_argument(
        "--time-factor",
        type=float,
        default=1.0,
        help="the potentiostat's cell time runs this many times faster than the wall "
        "clock (default 1: real time)",
    )
    s.add_argument(
        "--artefacts",
        default="",
        metavar="LIST",
        help=f"what real data has, comma-separated name or name=value: {ARTEFACT_HELP}",
    )
    s.add_argument(
        "--mount-offset",
        type=mount_offset,
        metavar="U,V",
        help="glue the sample U,V mm off the centring stage's middle (each within ±1), for "
        "trying the alignment plan (README, 'Aligning the sample')",
    )
    s.set_defaults(func=_sim)
    c = sub.add_parser(
        "check",
        help="connect to the beamline of a config file and report",
        description="Connect every device of a beamline TOML (see control/config.py) and "
        "report what it reads; one-line errors for what does not connect.",
    )
    c.add_argument("--config", type=Path, required=True, help="beamline TOML file")
    c.set_defaults(func=_check)
    i = sub.add_parser(
        "integrate",
        help="integrate detector image files (CBF, EDF, TIFF, HDF5) with a PONI geometry",
        description="Integrate every frame of FILE... into q bins with the live engines. "
        "Masked: the detector's mask, --mask, and every pixel < 0. Solid-angle correction "
        "on; polarisation only with --polarization. Outputs, never overwriting: "
        "--out NAME.h5 (.hdf5, .nxs) one HDF5 file for every frame; --out NAME.dat (any "
        "other suffix) one text file for one frame; --out DIR (no suffix) one text file "
        "per frame, DIR/<stem>.dat or <stem>_<frame>.dat, clashing stems keeping their "
        "suffix (a_tif.dat). Text: q, I, sigma columns.",
    )
    i.add_argument("files", nargs="+", type=Path, metavar="FILE")
    i.add_argument("--poni", type=Path, required=True, help="pyFAI PONI geometry file")
    i.add_argument("--bins", type=int, default=2000, help="number of q bins (default 2000)")
    i.add_argument(
        "--out",
        type=Path,
        required=True,
        help="NAME.h5 for HDF5, NAME.dat for one frame as text, or a folder (see above)",
    )
    i.add_argument("--method", choices=METHODS, default="mean")
    i.add_argument("--mask", type=Path, help="mask image (non-zero = masked), any fabio format")
    i.add_argument(
        "--polarization", type=float, help="polarisation factor in [-1, 1] (default: none)"
    )
    i.set_defaults(func=_integrate)
    add_analysis_commands(sub)
    add_store_commands(sub)
    pr = sub.add_parser(
        "process",
        help="run the live processor on its own (documents + detector stream in, files out)",
        description="The live processor: binds --docs for bluesky documents, connects to "
        "the detector streams, integrates every frame, reconstructs every q bin and "
        "writes one NeXus file per run into --out.",
    )
    add_processor_arguments(pr)
    pr.set_defaults(func=_process)
    v = sub.add_parser(
        "view",
        help="the live display in a browser: a running processor, finished runs, or both",
        description="Serve the read-only web display: --live ADDRESS follows a processor's "
        "published reports (the slice growing, the V/I trace, progress); FILE or DIR shows "
        "finished runs (a folder's new files appear as they are written). Listens on "
        "127.0.0.1 unless --host says otherwise; prints the page's URL.",
    )
    from ..live_processing.display.server import add_view_arguments

    add_view_arguments(v)
    v.set_defaults(func=_view)
    return p


def _view(args: argparse.Namespace) -> int:
    from ..live_processing.display.server import serve

    try:
        return serve(args, ready=lambda url: print(url, flush=True))
    except ValueError as exc:
        raise ConfigError(f"view: {exc}") from exc
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
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
