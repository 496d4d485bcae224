"""``operando integrate`` on Pilatus frames made with pyFAI's own geometry, against pyFAI."""

from __future__ import annotations

from pathlib import Path

import fabio.cbfimage
import fabio.edfimage
import fabio.tifimage
import h5py
import numpy as np
import pytest
from pyFAI.detectors import detector_factory
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from operando.control.cli import main
from operando.live_processing.integration.fast_integrate import METHOD

BINS = 1000


@pytest.fixture(scope="module")
def pilatus(tmp_path_factory: pytest.TempPathFactory) -> tuple[AzimuthalIntegrator, Path, dict]:
    """A Pilatus 1M powder frame (gaps and dead pixels negative) in four file formats."""
    d = tmp_path_factory.mktemp("frames")
    ai = AzimuthalIntegrator(
        dist=0.2,
        poni1=0.09,
        poni2=0.085,
        rot1=0.012,
        detector=detector_factory("Pilatus1M"),
        wavelength=0.31e-10,
    )
    ai.write(str(d / "pilatus.poni"))
    rng = np.random.default_rng(11)
    q = np.linspace(0.05, 12, 4000)
    profile = 40 + 20 * np.exp(-q / 3)
    for centre in (1.5, 2.2, 2.6, 3.1, 3.8):
        profile += 300 * np.exp(-0.5 * ((q - centre) / 0.015) ** 2)
    expected = ai.calcfrom1d(q, profile, dim1_unit="q_A^-1", correctSolidAngle=True)
    frame = rng.poisson(np.clip(expected, 0, None)).astype(np.int32)
    frame[ai.detector.mask.astype(bool)] = -1  # module gaps
    dead = rng.integers(0, frame.size, 300)
    frame.ravel()[dead] = -2  # dead pixels, not in the detector's mask
    files = {
        "cbf": d / "frame.cbf",
        "edf": d / "frame.edf",
        "tif": d / "frame.tif",
        "h5": d / "frame_master.h5",
    }
    fabio.cbfimage.CbfImage(data=frame).write(str(files["cbf"]))
    fabio.edfimage.EdfImage(data=frame).write(str(files["edf"]))
    fabio.tifimage.TifImage(data=frame).write(str(files["tif"]))
    with h5py.File(files["h5"], "w") as f:
        f["entry/data/data"] = np.stack([frame, frame])
    return ai, d / "pilatus.poni", {"frame": frame, **files}


def _pyfai(ai: AzimuthalIntegrator, frame: np.ndarray, **kw):  # type: ignore[no-untyped-def]
    mask = ai.detector.mask.astype(bool) | (frame < 0)
    return ai.integrate1d(
        frame, BINS, unit="q_A^-1", method=METHOD, mask=mask, correctSolidAngle=True, **kw
    )


@pytest.mark.parametrize("fmt", ["cbf", "edf", "tif"])
def test_text_output_agrees_with_pyfai(pilatus, fmt, tmp_path: Path) -> None:
    ai, poni, files = pilatus
    out = tmp_path / "pattern.dat"
    args = ["integrate", str(files[fmt]), "--poni", str(poni), "--bins", str(BINS)]
    assert main([*args, "--out", str(out)]) == 0
    text = out.read_text().splitlines()
    assert text[0].startswith("#") and any("pixels < 0" in line for line in text[:6])
    got = np.loadtxt(out)
    ref = _pyfai(ai, files["frame"])
    assert got.shape == (BINS, 3)
    np.testing.assert_allclose(got[:, 0], ref.radial, rtol=1e-6)
    counts = np.diff(np.asarray(_engine_indptr(ai, files["frame"])))
    well = counts >= 100
    assert well.sum() > 500
    assert np.max(np.abs(got[well, 1] / ref.intensity[well] - 1)) <= 1e-3


def _engine_indptr(ai: AzimuthalIntegrator, frame: np.ndarray) -> np.ndarray:
    from operando.live_processing.integration.fast_integrate import SparseIntegrator

    mask = (ai.detector.mask.astype(bool) | (frame < 0)).astype(np.int8)
    return SparseIntegrator(ai, BINS, mask=mask).matrix.indptr


def test_hdf5_in_and_out_with_polarization_and_trimmed(pilatus, tmp_path: Path) -> None:
    ai, poni, files = pilatus
    out = tmp_path / "patterns.h5"
    args = ["integrate", str(files["h5"]), "--poni", str(poni), "--bins", str(BINS)]
    assert main([*args, "--out", str(out), "--polarization", "0.95"]) == 0
    with h5py.File(out) as f:
        intensity = f["entry/integrated/intensity"][()]
        sigma = f["entry/integrated/sigma"][()]
    assert intensity.shape == (2, BINS) and np.isfinite(sigma).any()
    ref = _pyfai(ai, files["frame"], polarization_factor=0.95)
    well = ref.count >= 100 if ref.count is not None else np.ones(BINS, bool)
    assert np.max(np.abs(intensity[0][well] / ref.intensity[well] - 1)) <= 1e-3

    trimmed = tmp_path / "trimmed"
    assert main([*args, "--out", str(trimmed), "--method", "trimmed"]) == 0
    written = sorted(trimmed.glob("*.dat"))
    assert [p.name for p in written] == ["frame_master_0000.dat", "frame_master_0001.dat"]
    mask = ai.detector.mask.astype(bool) | (files["frame"] < 0)
    ref = ai.medfilt1d_ng(
        files["frame"], BINS, unit="q_A^-1", method=METHOD, percentile=(5, 95), mask=mask
    )
    got = np.loadtxt(written[0])
    well = np.isfinite(ref.intensity) & (ref.intensity > 0)
    assert np.max(np.abs(got[well, 1] / ref.intensity[well] - 1)) <= 1e-3


def test_bad_input_names_the_thing(pilatus, tmp_path: Path, capsys) -> None:
    _ai, poni, files = pilatus
    base = ["integrate", "--poni", str(poni), "--out", str(tmp_path / "x.dat")]
    assert main([*base, str(tmp_path / "nope.cbf")]) == 2
    assert "image file" in capsys.readouterr().err
    small = tmp_path / "small.edf"
    fabio.edfimage.EdfImage(data=np.zeros((10, 10), np.int32)).write(str(small))
    assert main([*base, str(small)]) == 2
    assert "frame shape (10, 10) differs from the PONI detector's (1043, 981)" in (
        capsys.readouterr().err
    )
    assert main([*base, str(files["cbf"]), "--polarization", "3"]) == 2
    assert "--polarization 3.0: must be within [-1, 1]" in capsys.readouterr().err


def test_one_output_per_input_and_never_an_overwrite(pilatus, tmp_path: Path, capsys) -> None:
    """Inputs with the same stem each get their own file; nothing existing is replaced."""
    _ai, poni, files = pilatus
    args = ["integrate", str(files["tif"]), str(files["edf"]), "--poni", str(poni)]
    args += ["--bins", "200"]
    out = tmp_path / "outdir"
    assert main([*args, "--out", str(out)]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert made == ["frame_edf.dat", "frame_tif.dat"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # the same call again: refused before any work, naming the file, nothing changed
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "frame_" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # two frames into one text file: a clear error, not a silent folder
    assert main([*args, "--out", str(tmp_path / "two.dat")]) == 2
    assert "2 frames need a folder" in capsys.readouterr().err
    assert not (tmp_path / "two.dat").exists()
    # HDF5: every frame in one file; the same name again is refused
    h5 = tmp_path / "both.h5"
    assert main([*args, "--out", str(h5)]) == 0
    assert main([*args, "--out", str(h5)]) == 2
    with h5py.File(h5) as f:
        g = f[f"entry/{f['entry'].attrs['default']}"]
        assert g.attrs["signal"] == "I" and g["I"].shape == g["I_errors"].shape == (2, 200)
        assert g["I"].attrs["units"] and g["q"].attrs["units"] == "1/angstrom"
