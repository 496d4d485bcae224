"""The ``operando`` commands that turn finished data into numbers: the holder's pattern,
the instrument's broadening, patterns per particle and shell for Rietveld programs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError


def add_analysis_commands(sub: Any) -> None:
    """Add ``holder-pattern``, ``calibrate-broadening`` and ``export-xy`` to ``sub``."""
    h = sub.add_parser(
        "holder-pattern",
        help="the cell holder's pattern from a broad scan's file (for the holder correction)",
        description="Average the reconstructed patterns of a broad scan's voxels that lie "
        "farther than --outside mm from the rotation axis (the housing's ring, as seed 001 "
        "masks it) and write them as two columns (q, intensity) to --out, never "
        "overwriting. Use it with --corrections ...,holder=OUT.",
    )
    h.add_argument("run", type=Path, metavar="RUN_FILE", help="a broad scan's NeXus file")
    h.add_argument("--outside", type=float, required=True, help="mm from the axis")
    h.add_argument("--out", type=Path, required=True, help="pattern file to write (.xy)")
    h.set_defaults(func=_holder_pattern)
    c = sub.add_parser(
        "calibrate-broadening",
        help="the instrument's line broadening (Caglioti U, V, W) from a CeO2 pattern",
        description="Fit each line of a line-shape standard's integrated pattern (two or "
        "three columns: q in 1/angstrom, intensity[, sigma]; '#' comments) and the Caglioti "
        "function H^2 = U tan^2(theta) + V tan(theta) + W (H: FWHM in degrees 2-theta) to "
        "their widths; write U, V, W, their errors and the fit's quality to --out (JSON), "
        "never overwriting.",
    )
    c.add_argument(
        "pattern", type=Path, metavar="PATTERN", help="the standard's pattern (.xy, .dat)"
    )
    c.add_argument("--wavelength", type=float, required=True, help="X-ray wavelength in angstrom")
    c.add_argument("--standard", default="CeO2", help="library phase of the standard (CeO2)")
    c.add_argument(
        "--fwhm", type=float, default=0.02, help="a first guess of the lines' FWHM in 1/angstrom"
    )
    c.add_argument("--out", type=Path, required=True, help="JSON file to write")
    c.set_defaults(func=_calibrate_broadening)
    x = sub.add_parser(
        "export-xy",
        help="a phase's particles' (or depth shells') summed patterns as .xy files",
        description="From a run's file: the particles of --phase (connected regions of its "
        "fitted intensity map above half its full-voxel value, as /entry/maps/profiles has "
        "them), their reconstructed patterns summed per particle, or per depth shell of "
        "--shell-mm below their surfaces (--by shell), each written as a two-column .xy "
        "file into --out for Rietveld programs. Nothing is written if any file exists.",
    )
    x.add_argument("run", type=Path, metavar="RUN_FILE", help="a run's NeXus file")
    x.add_argument("--phase", required=True, help="a phase with lattice maps in the file")
    x.add_argument("--by", choices=("particle", "shell"), default="particle")
    x.add_argument("--shell-mm", type=float, help="shell thickness in mm (default one voxel)")
    x.add_argument("--out", type=Path, required=True, help="folder for the .xy files")
    x.set_defaults(func=_export_xy)


def _holder_pattern(args: argparse.Namespace) -> int:
    from ..live_processing.tomography.corrections.holder import pattern_from_run, write_pattern

    try:
        q, pattern = pattern_from_run(args.run, args.outside)
        write_pattern(args.out, q, pattern)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"holder-pattern: {exc}") from exc
    print(args.out)
    return 0


def _calibrate_broadening(args: argparse.Namespace) -> int:
    import numpy as np

    from ..live_processing.analysis.broadening import BroadeningError, fit_standard

    if args.out.exists():
        raise ConfigError(f"calibrate-broadening: {args.out} exists; not overwritten")
    if not 0.01 <= args.wavelength <= 10.0:
        raise ConfigError(
            f"calibrate-broadening: --wavelength {args.wavelength} Å is outside 0.01..10 Å"
        )
    try:
        columns = np.loadtxt(args.pattern, ndmin=2)
        if columns.shape[1] < 2:
            raise ValueError(f"{args.pattern} has {columns.shape[1]} column; need q and intensity")
        fit = fit_standard(columns[:, 0], columns[:, 1], args.wavelength, args.standard, args.fwhm)
    except (OSError, KeyError, ValueError, BroadeningError) as exc:
        raise ConfigError(f"calibrate-broadening: {exc}") from exc
    with open(args.out, "x") as f:
        json.dump(
            {**fit.to_dict(), "standard": args.standard, "pattern": str(args.pattern)}, f, indent=1
        )
    print(
        f"U = {fit.u:.3g} ± {fit.u_error:.2g}, V = {fit.v:.3g} ± {fit.v_error:.2g}, "
        f"W = {fit.w:.3g} ± {fit.w_error:.2g} deg² from {fit.lines} lines "
        f"(widths within {100 * fit.rms_relative:.1f} % RMS)"
    )
    print(args.out)
    return 0


def _export_xy(args: argparse.Namespace) -> int:
    from ..live_processing.analysis.export import ExportError, grouped_patterns
    from ..live_processing.files.xy import write_xy

    try:
        q, groups = grouped_patterns(args.run, args.phase, args.by, args.shell_mm)
    except (OSError, KeyError, ExportError) as exc:
        raise ConfigError(f"export-xy: {exc}") from exc
    stem = f"{args.run.stem.split('_')[0]}_{args.phase}"
    paths = [args.out / f"{stem}_{label}.xy" for label, _comment, _p in groups]
    taken = [p for p in paths if p.exists()]
    if taken:
        raise ConfigError(f"export-xy: {taken[0]} exists; nothing written, nothing overwritten")
    args.out.mkdir(parents=True, exist_ok=True)
    for path, (_label, comment, pattern) in zip(paths, groups, strict=True):
        write_xy(path, q, pattern, comment)
    print("\n".join(str(p) for p in paths))  # once all are written
    return 0
