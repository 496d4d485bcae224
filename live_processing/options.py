"""The live processor's command-line options (light: argparse and the settings type only).

Shared by ``python -m operando.live_processing.processor`` and ``operando process``, so
both take exactly the same options. Processing options start from ``--settings FILE``
(a TOML file's ``[processing]`` table, or a beamline config) or the defaults of
:class:`~operando.protocols.processing.ProcessingSettings`; options given override them.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from ..protocols.processing import (
    METHODS,
    ProcessingSettings,
    SettingsError,
    parse_corrections,
)

# [processing] keys that are the control session's, not the processor's
SESSION_KEYS = ("docs",)


def add_processor_arguments(p: argparse.ArgumentParser) -> None:
    """Add the processor's options to ``p``."""
    p.add_argument(
        "--docs",
        default="tcp://127.0.0.1:*",
        metavar="ADDR",
        help="ZMQ address to bind for bluesky documents (bluesky's 0MQ Publisher connects "
        "here; default a free loopback port, printed in the READY line)",
    )
    p.add_argument(
        "--frames",
        action="append",
        default=[],
        metavar="ADDR",
        help="detector Stream V2 address to connect to (repeatable; addresses named in a "
        "descriptor's stream_address are connected too)",
    )
    p.add_argument(
        "--results", metavar="ADDR", help="ZMQ address to PUSH progress and written reports to"
    )
    p.add_argument(
        "--publish",
        default="tcp://127.0.0.1:*",
        metavar="ADDR",
        help="ZMQ address to bind a PUB socket on, which publishes every report to any "
        "number of viewers (default a free loopback port, printed in the READY line)",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the run files"
    )
    p.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="TOML file whose [processing] table gives the settings (the options below "
        "override it)",
    )
    p.add_argument(
        "--settings-json",
        metavar="JSON",
        help="the settings as one JSON object (what a control session passes on)",
    )
    p.add_argument("--bins", type=int, help="number of q bins (default 400)")
    p.add_argument(
        "--q-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="q range in 1/Å (default 0.8 4.6)",
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="integration worker processes (default 0)"
    )
    p.add_argument(
        "--dispatch", metavar="ADDR", help="bind address for frames to workers (default loopback)"
    )
    p.add_argument(
        "--collect", metavar="ADDR", help="bind address for workers' patterns (default loopback)"
    )
    p.add_argument(
        "--keys",
        type=Path,
        metavar="DIR",
        help="CURVE keys: workers authenticate (needed to bind --dispatch/--collect off-host)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        help="mean, 10 %% trimmed mean (zingers, spots) or sigma clipping (default mean)",
    )
    p.add_argument(
        "--corrections",
        metavar="LIST",
        help="sinogram corrections in order, comma-separated name or name=value "
        "(default normalise,rotation_centre; 'none' for none)",
    )
    p.add_argument("--mask", metavar="FILE", help="mask image, non-zero pixels masked")
    p.add_argument("--dark", metavar="FILE", help="dark image, subtracted from every frame")
    p.add_argument("--flat", metavar="FILE", help="flat-field image, frames divided by it")
    p.add_argument("--polarisation", type=float, help="polarisation factor (default 0.99)")
    p.add_argument(
        "--svd-rank",
        type=int,
        metavar="R",
        help="reconstruct a truncated-SVD basis of q of this rank (0: every q bin, exact)",
    )


def read_settings_file(path: Path) -> ProcessingSettings:
    """The ``[processing]`` table of a TOML file (a beamline config or a settings file)."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
    table = raw.get("processing", raw)
    if not isinstance(table, dict):
        raise SettingsError(f"settings file {path}: [processing] must be a table")
    table = {k: v for k, v in table.items() if k not in SESSION_KEYS}
    return ProcessingSettings.from_table(table, where=f"settings file {path} [processing]")


def settings_from_args(args: Any) -> ProcessingSettings:
    """The settings of ``--settings`` (or the defaults) with the options given on top."""
    if args.settings_json:
        base = ProcessingSettings.from_json(args.settings_json)
    elif args.settings:
        base = read_settings_file(args.settings)
    else:
        base = ProcessingSettings()
    return apply_options(base, args)


def apply_options(base: ProcessingSettings, args: Any, workers: bool = True) -> ProcessingSettings:
    """``base`` with the processing options given on the command line on top (with
    ``workers``: ``--workers`` is the processor's integration workers)."""
    corrections = parse_corrections(args.corrections) if args.corrections is not None else None
    return base.with_options(
        bins=args.bins,
        q_range=tuple(args.q_range) if args.q_range else None,
        method=args.method,
        corrections=corrections,
        mask=args.mask,
        dark=args.dark,
        flat=args.flat,
        polarisation=args.polarisation,
        svd_rank=args.svd_rank,
        workers=args.workers if workers else None,
    )
