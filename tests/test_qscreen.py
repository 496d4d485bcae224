"""Q-screening: named q windows' intensities per voxel less a local background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from artefact_scan import acquire, reconstruct, sample

from operando.live_processing.analysis.qscreen import (
    QWindow,
    parse_windows,
    phase_window,
    rgb,
    screen,
    window_intensity,
    windows_for,
)
from operando.protocols.processing import ProcessingSettings, SettingsError
from operando.simulators.artefacts import Artefacts

Q = np.linspace(1.0, 3.0, 211)  # 0.0095 1/Å bins, as the demo's


def peak_volume(amplitude: np.ndarray, centre: float = 1.86) -> np.ndarray:
    """A 0.01-wide line of area ``amplitude`` per voxel on a sloped background and a
    broad halo (σ 1.5 1/Å: straight over a window and its flanks)."""
    line = np.exp(-0.5 * ((Q - centre) / 0.01) ** 2) / (0.01 * np.sqrt(2 * np.pi))
    under = 2.0 + 0.5 * Q + 3 * np.exp(-0.5 * ((Q - 1.6) / 1.5) ** 2)
    return amplitude[..., None] * line * (Q[1] - Q[0]) + under


def test_a_window_measures_its_line_over_any_background() -> None:
    amplitude = np.linspace(0.5, 2.0, 12).reshape(3, 4)
    got = window_intensity(peak_volume(amplitude), Q, QWindow("graphite003", 1.82, 1.90))
    assert got == pytest.approx(amplitude, abs=0.02)  # what is left: the halo's curvature
    # a window edge crossing a bin does not make the map jump
    moved = [
        window_intensity(peak_volume(amplitude), Q, QWindow("g", 1.82 + d, 1.90 + d))
        for d in np.linspace(0, 0.0095, 6)
    ]
    assert max(np.abs(m - moved[0]).max() for m in moved) < 0.01 * amplitude.max()


def test_windows_are_parsed_and_checked() -> None:
    assert parse_windows("graphite003=1.82:1.90, Li2=2.5:2.6") == [
        QWindow("graphite003", 1.82, 1.90),
        QWindow("Li2", 2.5, 2.6),
    ]
    with pytest.raises(SettingsError, match="give name=lo:hi"):
        parse_windows("graphite=1.82")
    with pytest.raises(SettingsError, match="must be 0 < lo < hi"):
        parse_windows("x=1.9:1.8")
    assert windows_for(("Al", "g=1.8:1.9"), {})[0] == phase_window("Al")
    for bad, words in (
        (("Unobtainium",), "not a library phase"),
        (("Al", "Al"), "each name may appear once"),
        (("g=1.8",), "give name=lo:hi"),
    ):
        with pytest.raises(SettingsError, match=words):
            ProcessingSettings(qscreen=bad)
    assert ProcessingSettings.from_json(ProcessingSettings(qscreen=("Al",)).to_json()).qscreen == (
        "Al",
    )
    with pytest.raises(ValueError, match="outside the data's q range"):
        window_intensity(np.zeros((2, Q.size)), Q, QWindow("far", 5.0, 5.1))
    with pytest.raises(ValueError, match="distinct names"):
        screen(np.zeros((2, Q.size)), Q, [QWindow("a", 1.5, 1.6), QWindow("a", 1.7, 1.8)])


def test_the_phases_windows_map_the_phases_of_a_scanned_cell(tmp_path: Path) -> None:
    """The simulated cell, scanned and reconstructed: each phase's window map follows
    its fraction, and the RGB composite puts each where it is."""
    ph = sample()
    scan = acquire(ph, Artefacts(), margin=3)
    volume = reconstruct(scan, "normalise,rotation_centre", tmp_path)[0][3:-3, 3:-3]
    present: dict[str, float | None] = {"LiMn2O4": 8.22, "Al": 4.0495, "PEEK": None}
    windows = [phase_window(name, present) for name in present]
    assert not windows[2].background  # the PEEK halo: its flanks are PEEK too
    maps = screen(volume, scan.integrator.q, windows)
    for name, m in maps.items():
        r = np.corrcoef(m.ravel(), ph.fraction[name].ravel())[0, 1]
        assert r >= 0.9, (name, r)
    colour = rgb(maps["LiMn2O4"], maps["Al"], maps["PEEK"])
    assert colour.shape == (*volume.shape[:2], 3) and 0 <= colour.min() <= colour.max() <= 1
    for channel, name in enumerate(("LiMn2O4", "Al", "PEEK")):
        brightest = np.unravel_index(ph.fraction[name].argmax(), ph.fraction[name].shape)
        assert colour[brightest][channel] >= 0.5
    nan = maps["Al"].copy()
    nan[0, 0] = np.nan
    assert rgb(nan, nan, nan)[0, 0].tolist() == [0, 0, 0]


def test_the_live_file_holds_the_maps_of_the_slice_so_far(tmp_path: Path) -> None:
    """Mid-scan, a SWMR reader finds each Q-screening map of the projections so far."""
    import h5py

    from operando.live_processing.service.run_state import RunState
    from operando.protocols.processing import parse_corrections
    from operando.protocols.xrdct import XrdctGeometry

    scan = acquire(sample(), Artefacts(), margin=3)
    geom = XrdctGeometry(list(scan.angles), list(scan.translations), False, "f", "s", "m", "p")
    settings = ProcessingSettings(
        bins=200, corrections=parse_corrections("normalise"), qscreen=("Al", "PEEK")
    )
    run = RunState.begin("r", geom, scan.integrator, "e", 0.0, settings, {}, tmp_path, "run")
    for i in range(scan.angles.size // 2):
        for j in range(scan.translations.size):
            run.sinogram.put(i, j, scan.patterns[i, j], scan.monitor[i, j])
        run.project_if_complete(i)
    assert run.write_live(force=True)
    with h5py.File(tmp_path / "run.live.h5", "r", libver="latest", swmr=True) as f:
        got = {k: f[f"entry/maps/qscreen/{k}/data"][()] for k in ("Al", "PEEK")}
        volume = f["entry/reconstruction/data"][()]
    n = volume.shape[0]
    for k, window in zip(("Al", "PEEK"), windows_for(("Al", "PEEK")), strict=True):
        want = window_intensity(volume, scan.integrator.q, window)
        middle = got[k][n // 2 - 3 : n // 2 + 3, n // 2 - 3 : n // 2 + 3]
        assert np.allclose(middle, want[n // 2 - 3 : n // 2 + 3, n // 2 - 3 : n // 2 + 3])
        assert np.isnan(got[k][0, 0])
    run.live.close(remove=True)
