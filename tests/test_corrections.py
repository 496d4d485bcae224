"""Sinogram corrections against ground truth: each artefact alone, uncorrected and corrected.

The truth is the noise-free scan of the same sample without artefacts, reconstructed by
the same code. For every artefact the corrected scan's per-phase maps must be as close
to it as an artefact-free scan's (at most 1.2×, and noise allows a little), and at
least 3× closer than the uncorrected scan's (root sum of squares over the phases: an
artefact such as air scatter shows in the phases it overlaps, not in all).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from artefact_scan import (
    Scan,
    acquire,
    acquire_each,
    errors,
    fine_truth,
    reconstruct,
    registered,
    sample,
)

from operando.live_processing.service.run_state import RunState
from operando.live_processing.tomography.corrections import STAGES, Pipeline, StageError
from operando.live_processing.tomography.corrections.centre import opposed_centre
from operando.live_processing.tomography.corrections.jitter import shift_row
from operando.protocols.processing import (
    Correction,
    ProcessingSettings,
    SettingsError,
    parse_corrections,
)
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators.artefacts import ArtefactError, Artefacts

BASE = "normalise,rotation_centre"
NOISE = 0.001  # absolute NRMS allowance on top of 1.2× (two noisy scans differ)

# artefact, its parameter here; (integration, corrections) left off, then on
CASES = {
    "axis_offset": ("axis_offset=0.3", ("mean", "normalise"), ("mean", BASE)),
    "air": ("air=3", ("mean", BASE), ("mean", "normalise,air,rotation_centre")),
    "decay": ("decay=37", ("mean", "rotation_centre"), ("mean", BASE)),
    "absorption": (
        "absorption",
        ("mean", BASE),
        ("mean", "normalise,transmission,rotation_centre"),
    ),
    "zingers": ("zingers=5e-4", ("mean", BASE), ("trimmed", BASE)),
}


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    out = tmp_path_factory.mktemp("truth")
    scan = acquire(sample(), Artefacts(), noise=False, margin=8)
    return reconstruct(scan, "normalise", out)[0], out


@pytest.fixture(scope="module")
def clean_errors(truth) -> dict[str, dict[str, float]]:
    """The artefact-free error of each integration method, all corrections on."""
    volume, out = truth
    found = {}
    scans = acquire_each(sample(), Artefacts(), ("mean", "trimmed"), margin=8, seed=1)
    for method, scan in scans.items():
        rec = reconstruct(scan, "normalise,air,transmission,rotation_centre", out)[0]
        found[method] = {k: e for k, (_r, e) in errors(rec, volume, scan).items()}
    return found


def scans_with(text: str, *methods: str) -> dict[str, Scan]:
    """One scan with this artefact, its frames integrated by each method."""
    art = Artefacts.parse(text)
    if art.decay:  # in this in-process scan the beam decays per point, not per second
        return acquire_each(sample(), Artefacts(), methods, margin=8, decay_period=art.decay)
    return acquire_each(sample(), art, methods, margin=8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_artefact_is_corrected_to_the_artefact_free_error(name, truth, clean_errors) -> None:
    volume, out = truth
    text, (method_off, off), (method, on) = CASES[name]
    scans = scans_with(text, *{method_off, method})  # the same frames, integrated each way
    uncorrected = errors(reconstruct(scans[method_off], off, out)[0], volume, scans[method_off])
    corrected = errors(reconstruct(scans[method], on, out)[0], volume, scans[method])
    print(f"\n{name}: phase  clean  uncorrected  corrected (normalised RMS against truth)")
    check_corrected(clean_errors[method], uncorrected, corrected)


def total(found: dict[str, tuple[float, float]]) -> float:
    """Root sum of squares of the phases' normalised RMS errors."""
    return math.sqrt(sum(e**2 for _r, e in found.values()))


def check_corrected(
    clean: dict[str, float],
    uncorrected: dict[str, tuple[float, float]],
    corrected: dict[str, tuple[float, float]],
) -> None:
    """Acceptance 1: every phase at most 1.2× its artefact-free error (noise allowed),
    and the whole at least 3× closer to the truth than uncorrected."""
    for k, (r, e) in corrected.items():
        print(f"  {k:10s} {clean[k]:.4f} {uncorrected[k][1]:.4f} {e:.4f}")
        assert e <= 1.2 * clean[k] + NOISE, (k, e, clean[k])
        assert r >= 0.99, (k, r)
    assert total(uncorrected) >= 3 * total(corrected), (uncorrected, corrected)


def test_spots_are_corrected_to_the_powder_part_of_the_ring(tmp_path: Path) -> None:
    """Coarse Al grains put half of the Al ring in a few spots that change every frame.

    The trimmed mean cuts the spots and keeps the powder part of the ring: few grains
    are no measure of how much Al a voxel holds, so the truth is the same sample whose
    Al scatters only that powder part (rendered at the same count scale). Against the
    full sample's truth, the Al map would differ by what its q window takes from the
    other phases (3 % of its norm), whatever the correction.
    """
    art = Artefacts.parse("spots")
    full = sample()
    powder = sample()
    powder.fraction["Al"] = full.fraction["Al"] * (1 - art.spots)
    noise_free = acquire(powder, Artefacts(), noise=False, margin=8)
    truth = reconstruct(noise_free, "normalise", tmp_path)[0]

    def error(scan: Scan) -> dict[str, tuple[float, float]]:
        return errors(reconstruct(scan, BASE, tmp_path)[0], truth, scan)

    clean_scan = acquire(powder, Artefacts(), method="trimmed", margin=8, seed=1, counts_of=full)
    clean_scan.phantom = full  # the same maps made (the phases' choice reads the phantom)
    clean = {k: e for k, (_r, e) in error(clean_scan).items()}
    scans = acquire_each(full, art, ("mean", "trimmed"), margin=8)
    spotty, trimmed = error(scans["mean"]), error(scans["trimmed"])
    print("\nspots: phase  clean  uncorrected (mean)  corrected (trimmed)")
    check_corrected(clean, spotty, trimmed)


def test_jitter_is_corrected_to_the_artefact_free_error(tmp_path: Path) -> None:
    """Each row's error is found from its centre of mass against the fitted sinusoid.

    Jitter moves where the beam samples the sample, so the truth here must not depend on
    the sampling: the slice from a scan 2× finer, binned (against the artefact-free
    scan's own reconstruction, that scan's aliasing would count as the jittered scan's
    error). What the sinusoid itself absorbs is a rigid move of the slice, which no data
    can tell from the stage's zero: every map is compared after registering it.
    """
    truth = fine_truth(sample(), tmp_path, margin=8)
    clean_scan = acquire(sample(), Artefacts(), margin=8, seed=1)
    clean_volume = registered(reconstruct(clean_scan, BASE, tmp_path)[0], truth, clean_scan)
    clean = {k: e for k, (_r, e) in errors(clean_volume, truth, clean_scan).items()}
    scan = scans_with("jitter=0.03", "mean")["mean"]
    off = errors(registered(reconstruct(scan, BASE, tmp_path)[0], truth, scan), truth, scan)
    on_volume, run = reconstruct(scan, "normalise,jitter,rotation_centre", tmp_path)
    on = errors(registered(on_volume, truth, scan), truth, scan)
    print("\njitter: phase  clean  uncorrected  corrected (against the finer scan)")
    check_corrected(clean, off, on)
    record = run.pipeline.record()["jitter"]
    assert record["applied"] and 0.025 < record["rms_shift"] < 0.04


@pytest.mark.parametrize(
    ("offset_steps", "interlaced"),
    [(-20.0, False), (-13.37, True), (-0.4, False), (7.77, False), (20.0, True)],
)
def test_rotation_centre_from_the_data_alone(tmp_path: Path, offset_steps, interlaced) -> None:
    """Within 0.2 translation steps for offsets of ±20 steps, whole or not, in a plain
    0–180° scan (last angle 180° − Δ) and in two interlaced sub-scans."""
    step = 0.05
    angles = None
    if interlaced:
        sub = np.linspace(0, 180, 12, endpoint=False)
        angles = np.concatenate([sub, sub + 7.5])  # acquisition order: sub-scan 1, then 2
    ph = sample(16, step)
    scan = acquire(
        ph, Artefacts(axis_offset=offset_steps * step), margin=22, n_angles=24, angles=angles
    )
    _volume, run = reconstruct(scan, BASE, tmp_path)
    true_bin = (scan.translations.size - 1) / 2 + offset_steps
    assert abs(run.pipeline.axis - true_bin) <= 0.2
    record = run.pipeline.record()["rotation_centre"]
    assert abs(record["centre"] - offset_steps * step) <= 0.2 * step
    # the opposed-projection estimate alone (the one used when rows' ends are not empty)
    assert abs(record["opposed_bin"] - true_bin) <= 0.2


def test_the_live_slice_is_sharp_before_the_scan_ends(tmp_path: Path, truth) -> None:
    """All but the last two rows in, at a whole-step offset: the running estimate has moved
    the live volume onto the axis and its maps already match the truth."""
    volume, _out = truth
    scan = acquire(sample(), Artefacts.parse("axis_offset=0.3"), margin=8)
    geom = XrdctGeometry(list(scan.angles), list(scan.translations), False, "f", "s", "m", "x")
    settings = ProcessingSettings(bins=200, corrections=parse_corrections(BASE))
    run = RunState.begin("r", geom, scan.integrator, "e", 0.0, settings, {}, tmp_path, "run")
    n_rows = scan.angles.size
    for i in range(n_rows - 2):
        for j in range(scan.translations.size):
            run.sinogram.put(i, j, scan.patterns[i, j], scan.monitor[i, j])
        run.project_if_complete(i)
    assert run.recentred >= 1
    assert abs(run.fbp.axis - ((scan.translations.size - 1) / 2 + 6)) <= 0.2
    partial = run.fbp.result() * (n_rows / run.fbp.n_added)
    for k, (r, _e) in errors(partial, volume, scan).items():
        assert r >= 0.9, (k, r)
    run.live.close(remove=True)


def test_opposed_centre_handles_a_last_angle_short_of_180() -> None:
    """A point sample off the axis: its trace gives the centre whatever the angular step."""
    n, centre = 41, 23.3
    angles = np.linspace(0, 180, 15, endpoint=False)
    s = np.arange(n)
    rows = np.zeros((angles.size, n, 2))
    for i, a in enumerate(np.deg2rad(angles)):
        pos = centre + 6 * np.cos(a) - 4 * np.sin(a)
        rows[i, :, 0] = np.exp(-0.5 * ((s - pos) / 1.5) ** 2)
        rows[i, :, 1] = 0.5 * rows[i, :, 0]
    assert abs(opposed_centre(angles, rows, 20.5) - centre) < 0.1


def test_a_scan_stopped_after_a_few_rows_keeps_the_grid_centre() -> None:
    """Four rows over 45° (an IOC lost at row 4) whose centres of mass fit a sinusoid
    centred far off the grid: the stage keeps the grid's centre, and the refinement of a
    guess off the grid is NaN, not an error (it raised "argmin of an empty sequence" as
    the partial scan's file was written)."""
    from operando.live_processing.tomography.corrections.base import Grid
    from operando.live_processing.tomography.corrections.centre import RotationCentre

    n = 16
    angles = np.linspace(0, 180, 12, endpoint=False)
    grid = Grid(angles, (np.arange(n) - (n - 1) / 2) * 0.075)
    rows = np.full((angles.size, n, 4), np.nan)
    for i, at in enumerate((2, 2, 14, 2)):  # a grain seen at these bins: c ≈ -80
        rows[i] = 0.01
        rows[i, at] = 1.0
    stage = RotationCentre({}, grid)
    for i in range(4):
        stage.row(i, rows[i], None)  # type: ignore[arg-type]
    assert stage.refine(rows) == (n - 1) / 2
    assert stage.record()["method"] == "grid centre (too few rows)"
    full = np.repeat(rows[:1], angles.size, axis=0)  # every row there: mirrored pairs
    assert np.isnan(opposed_centre(angles, full, 500.0))


def test_shift_row_moves_by_fractions_without_wrapping_around() -> None:
    """A smooth row moves by a fraction of a bin exactly; the ends continue outward."""
    s = np.arange(48.0)
    bump = lambda c: np.exp(-0.5 * ((s - c) / 2.0) ** 2)[:, None].astype(np.float32)  # noqa: E731
    assert np.abs(shift_row(bump(20.0), 1.25) - bump(21.25)).max() < 1e-4
    assert np.abs(shift_row(bump(20.0), -2.6) - bump(17.4)).max() < 1e-4
    level = np.full((48, 2), 3.0, np.float32)
    assert np.allclose(shift_row(level, 2.5), 3.0, atol=1e-4)  # air continues past the ends
    moved = shift_row(bump(46.0), 3.0)  # what leaves at the right does not enter at the left
    assert np.abs(moved[:20]).max() < 1e-4 and moved[-1, 0] > 0.5


def test_artefact_lists_are_checked_naming_what_is_allowed() -> None:
    art = Artefacts.parse("axis_offset=0.04,air,decay,spots,zingers=1e-4")
    assert art.axis_offset == 0.04 and art.air == 1.0 and art.zingers == 1e-4
    assert str(Artefacts.parse(str(art))) == str(art)
    assert not Artefacts.parse("").any
    for bad, words in (
        ("dust", "allowed: axis_offset, air"),
        ("zingers", "needs a value"),
        ("jitter=abc", "must be a number"),
        ("axis_offset=9", "within [-5, 5] mm"),
        ("zingers=0", "within (0, 0.01]"),
        ("air,air", "given twice"),
    ):
        with pytest.raises(ArtefactError, match=words.replace("[", r"\[").replace("(", r"\(")):
            Artefacts.parse(bad)


def test_processing_settings_carry_the_corrections_and_refuse_bad_values() -> None:
    s = ProcessingSettings.from_table(
        {"bins": 300, "method": "trimmed", "corrections": ["normalise", {"name": "air", "edge": 4}]}
    )
    assert s.correction("air") == Correction("air", {"edge": 4})
    assert ProcessingSettings.from_json(s.to_json()) == s
    assert s.integration("poni text")["key"] != ProcessingSettings().integration("poni text")["key"]
    for table, words in (
        ({"bins": 1}, "bins = 1"),
        ({"method": "median"}, "method = 'median'"),
        ({"q_range": [3, 1]}, "q_range"),
        ({"colour": 1}, "unknown key"),
        ({"corrections": ["air", "air"]}, "once"),
    ):
        with pytest.raises(SettingsError, match=words):
            ProcessingSettings.from_table(table)
    with pytest.raises(StageError, match="known: air, holder, jitter, normalise"):
        Pipeline.check((Correction("ring_of_fire"),))
    with pytest.raises(StageError, match="edge"):
        Pipeline.check((Correction("air", {"edge": 0}),))
    assert {"normalise", "rotation_centre", "air", "jitter", "transmission"} <= set(STAGES)
