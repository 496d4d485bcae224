"""Two-column pattern files (``.xy``: q in 1/Å, intensity), as Rietveld programs read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_xy(path: Path, q: np.ndarray, pattern: np.ndarray, comment: str = "") -> None:
    """Write a pattern; an existing file is never overwritten (``FileExistsError``)."""
    if path.exists():
        raise FileExistsError(f"{path} exists; not overwritten")
    header = f"q (1/angstrom)  intensity{'  ' + comment if comment else ''}"
    np.savetxt(path, np.column_stack([q, pattern]), header=header)
