"""The live processor's command-line options (light: argparse only, no numerics imported).

Shared by ``python -m operando.live_processing.processor`` and ``operando process``, so
both take exactly the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

METHODS = ("mean", "trimmed", "sigmaclip")


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
        "--out", type=Path, required=True, metavar="DIR", help="folder for the run files"
    )
    p.add_argument("--bins", type=int, default=400, help="number of q bins (default 400)")
    p.add_argument(
        "--workers", type=int, default=0, metavar="N", help="integration worker processes"
    )
    p.add_argument(
        "--dispatch", metavar="ADDR", help="bind address for frames to workers (default loopback)"
    )
    p.add_argument(
        "--collect", metavar="ADDR", help="bind address for workers' patterns (default loopback)"
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="mean",
        help="mean, 10 %% trimmed mean (zingers) or sigma clipping (default mean)",
    )
    p.add_argument(
        "--svd-rank",
        type=int,
        default=0,
        metavar="R",
        help="reconstruct a truncated-SVD basis of q of this rank (0: every q bin, exact)",
    )
