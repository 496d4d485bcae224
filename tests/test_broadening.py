"""#14: the instrument's Caglioti function from a CeO2 standard, against the U, V, W
the pattern was made with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from operando.live_processing.analysis import broadening as br
from operando.materials.phases import get_phase

WAVELENGTH = 0.2480  # Å, 50 keV
TRUE = (0.0120, -0.0030, 0.0009)  # U, V, W in deg²


def ceo2_pattern(seed: int = 1, counts: float = 2e4) -> tuple[np.ndarray, np.ndarray]:
    """CeO2 lines (library intensities) of Caglioti width on a sloping background, counted."""
    q = np.linspace(1.0, 7.5, 6000)
    truth = br.Caglioti(*TRUE, 0, 0, 0, WAVELENGTH, 0, 0.0)
    _, lines, height = get_phase("CeO2").line_table()
    y = 50.0 + 10.0 * (q - 1.0)
    for c, h in zip(lines, height / height.max(), strict=True):
        sigma = float(truth.fwhm_q(c)) / (2 * np.sqrt(2 * np.log(2)))
        y = y + counts * h * np.exp(-0.5 * ((q - c) / sigma) ** 2)
    return q, np.random.default_rng(seed).poisson(y).astype(float)


def test_the_conversions_between_q_and_two_theta_invert() -> None:
    q = np.array([1.0, 3.0, 7.0])
    w_deg = br.fwhm_q_to_2theta(q, np.full(3, 0.01), WAVELENGTH)
    assert np.allclose(br.fwhm_2theta_to_q(q, w_deg, WAVELENGTH), 0.01)
    assert br.two_theta(4 * np.pi / WAVELENGTH * np.sin(np.radians(5.0)), WAVELENGTH) == (
        pytest.approx(10.0)
    )


def test_caglioti_is_recovered_from_a_counted_ceo2_pattern() -> None:
    q, y = ceo2_pattern()
    fit = br.fit_standard(q, y, WAVELENGTH, fwhm_guess=0.015)
    assert fit.lines >= 8
    truth = br.Caglioti(*TRUE, 0, 0, 0, WAVELENGTH, 0, 0.0)
    tt = np.linspace(4.0, 17.0, 30)
    # the width curve, which is what the maps use, within 1 % over the range
    assert np.allclose(fit.fwhm_deg(tt), truth.fwhm_deg(tt), rtol=0.01)
    # each parameter within 3 of its standard errors
    for got, err, want in ((fit.u, fit.u_error, TRUE[0]), (fit.v, fit.v_error, TRUE[1]),
                           (fit.w, fit.w_error, TRUE[2])):  # fmt: skip
        assert abs(got - want) <= 3 * err, (got, err, want)
    assert fit.rms_relative < 0.01


def test_too_few_lines_is_a_clear_error() -> None:
    q, y = ceo2_pattern()
    keep = q < 3.0  # two or three CeO2 lines only
    with pytest.raises(br.BroadeningError, match="needs at least 4"):
        br.fit_standard(q[keep], y[keep], WAVELENGTH, fwhm_guess=0.015)
    with pytest.raises(br.BroadeningError, match="amorphous"):
        br.fit_standard(q, y, WAVELENGTH, standard="PEEK")


def test_calibrate_broadening_command_writes_the_fit_and_never_overwrites(tmp_path: Path) -> None:
    q, y = ceo2_pattern(seed=2)
    xy = tmp_path / "ceo2.xy"
    np.savetxt(xy, np.column_stack([q, y]))
    out = tmp_path / "caglioti.json"
    cmd = [sys.executable, "-m", "operando.control.cli", "calibrate-broadening", str(xy),
           "--wavelength", str(WAVELENGTH), "--fwhm", "0.015", "--out", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    fit = json.loads(out.read_text())
    assert set(fit) >= {"u", "v", "w", "u_error", "wavelength", "lines"}
    assert fit["u"] == pytest.approx(TRUE[0], abs=3 * fit["u_error"])
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists" in again.stderr
    assert json.loads(out.read_text()) == fit
