"""#17 acceptance 4 (XRF): an SDD read at every point of a step XRD-CT gives element
maps (XRF-CT slices) that follow the phantom's element distribution, and the K-line fit
recovers the areas the simulated detector was given."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.ndimage
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from ophyd import EpicsSignal

from operando.control.progress import ScanProgress
from operando.control.session import connect_publisher
from operando.devices.sdd import EnergyDispersiveDetector
from operando.live_processing.analysis.xrf_fit import XrfFitter
from operando.materials.xrf_lines import XrfError
from operando.plans.projection_map import projection_map
from operando.plans.xrdct import xrdct_scan
from operando.simulators.phantom import Phantom, default_phantom
from operando.simulators.render import FrameRenderer, default_integrator
from operando.simulators.xrf import CHANNELS, OFFSET_KEV, SLOPE_KEV, XrfModel, element_density

N_T, STEP, N_ANGLES = 20, 0.06, 24  # translations, mm, angles over 180°
LAYER = (0.05, 0.05)  # the electrode layer's middle and thickness along z (mm)
ZS = [0.0, 0.02, 0.035, 0.05, 0.065, 0.08, 0.1]  # mm: across both of its edges
MAP_ANGLE = 0.0  # the beam along the slice's rows: a map row is the slice's column sums


def test_the_line_fit_recovers_each_elements_counts() -> None:
    """Spectra of the simulator's model, with and without counting noise: the fitted
    K-family areas are the counts each element was given."""
    model = XrfModel(FrameRenderer(default_phantom(), default_integrator(8)), 12.398 / 0.248)
    fitter = XrfFitter(["Al", "Mn"], OFFSET_KEV, SLOPE_KEV, CHANNELS)
    rng = np.random.default_rng(4)
    for x in (-0.3, 0.0, 0.25):
        expected = model.expected(30.0, x, 1.0) * 0.05  # 50 ms
        # each element's own counts: the model with the other element's density zeroed
        per_element = model.line_counts(30.0, x, 1.0) * 0.05
        ideal = fitter.areas(expected)
        np.testing.assert_allclose(ideal, per_element, rtol=0.01, atol=0.5)
        noisy = fitter.areas(rng.poisson(expected))  # within 5 σ of the whole count's noise
        assert (np.abs(noisy - per_element) < 5 * np.sqrt(expected.sum())).all()


def test_bad_elements_are_refused_by_name() -> None:
    with pytest.raises(XrfError, match="Xx"):
        XrfFitter(["Xx"], OFFSET_KEV, SLOPE_KEV, CHANNELS)
    with pytest.raises(XrfError, match=r"U.*outside"):
        XrfFitter(["U"], OFFSET_KEV, SLOPE_KEV, CHANNELS)  # U K lines ~98 keV
    with pytest.raises(XrfError, match="no elements"):
        XrfFitter([], OFFSET_KEV, SLOPE_KEV, CHANNELS)


@pytest.fixture()
def sample_file(ioc, tmp_path) -> Iterator[Path]:
    """The session IOC renders the default cell from a file, so each series' ground
    truth is written beside it."""
    path = tmp_path / "cell.h5"
    default_phantom().save(path)
    changer = EpicsSignal(f"{ioc.info['prefix']}sim:Phantom", name="changer", string=True)
    changer.wait_for_connection(timeout=10)
    changer.put(str(path), wait=True, timeout=30)
    yield path
    default = tmp_path / "default.h5"
    default_phantom().save(default)
    changer.put(str(default), wait=True, timeout=30)


@pytest.fixture()
def layer(ioc) -> Iterator[object]:
    """The cell's electrode in a z layer (the holder at every height): a function of z
    giving how much of the beam's height is in the layer (1 µm beam: 0 or 1)."""
    prefix = ioc.info["prefix"]
    mid = EpicsSignal(f"{prefix}sim:ElectrodeZ", name="mid")
    thick = EpicsSignal(f"{prefix}sim:ElectrodeT", name="thick")
    for sig, value in ((mid, LAYER[0]), (thick, LAYER[1])):
        sig.wait_for_connection(timeout=10)
        sig.put(value, wait=True)
    yield lambda z: float(abs(z - LAYER[0]) < LAYER[1] / 2)
    thick.put(0.0, wait=True)


@pytest.fixture()
def sdd(ioc) -> EnergyDispersiveDetector:
    det = EnergyDispersiveDetector(f"{ioc.info['prefix']}sdd:", name="sdd")
    det.wait_for_connection(timeout=10)
    return det


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def on_scan_grid(truth: np.ndarray, pixel: float) -> np.ndarray:
    """The phantom's map averaged over each scan voxel (STEP mm) on the scan's grid."""
    box = scipy.ndimage.uniform_filter(truth, size=max(1, round(STEP / pixel)), mode="constant")
    at = (np.arange(N_T) - (N_T - 1) / 2) * STEP / pixel + (truth.shape[0] - 1) / 2
    yy, xx = np.meshgrid(at, at, indexing="ij")
    return scipy.ndimage.map_coordinates(box, [yy, xx], order=1, cval=0.0)


def projected(truth: Phantom, density: np.ndarray, angle: float, xs: list[float]) -> np.ndarray:
    """The element's density summed along the beam at each stage x (g/cm³ · mm)."""
    r = FrameRenderer(truth, default_integrator(16))
    values = density.ravel()[r.active]
    return np.array([float(r.column(values, angle, x)) for x in xs])


def run_scans(beamline, processor, poni_file, sdd, wait_written) -> tuple[str, str]:
    """An XRD-CT with the SDD, then a projection map across the electrode layer's edge:
    their files."""
    proc, results = processor
    pub = connect_publisher(proc.info["docs"], results)
    RE = RunEngine({})
    RE.subscribe(pub)
    RE.subscribe(ScanProgress(bar=False))  # rows of the map, as a session shows them
    det, stage = beamline.det, beamline.stage
    old, z0 = det.exposure.get(), float(stage.z.position)
    # 40 ms a point: Al Kα gives ~30 counts, Mn Kα ~2·10⁴ (at 20 ms, ~15 Al counts a
    # point left the slice's 0° projection so noisy that it met the map at r = 0.898 once)
    det.exposure.put(0.04)
    translations = ((np.arange(N_T) - (N_T - 1) / 2) * STEP).tolist()
    angles = np.linspace(0, 180, N_ANGLES, endpoint=False).tolist()
    try:
        RE(bps.mv(stage.z, LAYER[0]))  # the slice in the electrode's layer
        RE(
            xrdct_scan(
                det, stage, beamline.diode, angles, translations,
                poni_file=str(poni_file), xrf=sdd, elements=("Al", "Mn"),
            )
        )  # fmt: skip
        ct = wait_written(results)
        det.exposure.put(0.05)  # a map dwells longer (seed 004: 0.3 s): Al Kα ~40 counts
        RE(
            projection_map(
                det, stage, beamline.diode, translations, ZS, angle=MAP_ANGLE,
                poni_file=str(poni_file), xrf=sdd, elements=("Al", "Mn"),
                peaks=("LiMn2O4", "Al", "PEEK"),
            )
        )  # fmt: skip
        mapped = wait_written(results)
    finally:
        det.exposure.put(old)
        RE(bps.mv(stage.z, z0))
        pub.close()
    assert ct["event"] == "written" and mapped["event"] == "written", (ct, mapped)
    return ct["path"], mapped["path"]


def test_xrf_ct_slices_and_projection_maps_follow_the_element_distribution(
    beamline, processor, poni_file, sample_file, sdd, wait_written, layer, caplog
) -> None:
    """Acceptance 4: element maps of the SDD's spectra against the phantom's element
    distribution (r ≥ 0.9), in XRF-CT slices and in a projection map (x × z at one
    angle, across the electrode layer's edge), and the slices agree with the map."""
    caplog.set_level(logging.INFO, logger="operando.progress")
    ct_path, map_path = run_scans(beamline, processor, poni_file, sdd, wait_written)
    shown = caplog.text
    assert f"{len(ZS)} heights x {N_T} translations" in shown
    assert f"row {len(ZS)}/{len(ZS)}" in shown and f"row {N_ANGLES}/{N_ANGLES}" in shown
    truth = Phantom.load(sample_file)
    density = element_density(truth)
    with h5py.File(ct_path) as f:
        fluo = f["entry/instrument/fluorescence"]
        assert fluo["data"].shape == (N_ANGLES, N_T, CHANNELS)
        assert list(fluo["elements"].asstr()[()]) == ["Al", "Mn"]
        assert not fluo["missing"][()].any()
        slices = {el: f[f"entry/maps/xrf/{el}/data"][()] for el in ("Al", "Mn")}
    for el, m in slices.items():
        assert m.shape == (N_T, N_T)
        r = correlation(m, on_scan_grid(density[el], truth.pixel_size))
        assert r >= 0.9, (el, r)
    translations = (np.arange(N_T) - (N_T - 1) / 2) * STEP
    with h5py.File(map_path) as f:
        entry = f["entry"]
        assert entry.attrs["default"] == "maps/rgb"
        rgb = entry["maps/rgb/data"][()]
        assert rgb.shape == (len(ZS), N_T, 3)
        assert list(entry["maps/rgb"].attrs["channels"]) == ["LiMn2O4", "Al", "PEEK"]
        assert entry["instrument/fluorescence/data"].shape == (len(ZS), N_T, CHANNELS)
        maps = {el: entry[f"maps/xrf/{el}/data"][()] for el in ("Al", "Mn")}
        bragg = {n: entry[f"maps/bragg/{n}/data"][()] for n in ("LiMn2O4", "Al", "PEEK")}
    inside = np.array([layer(z) for z in ZS])  # 1 in the electrode layer, 0 outside
    for el, m in maps.items():
        want = inside[:, None] * projected(truth, density[el], MAP_ANGLE, list(translations))
        r = correlation(m, want)
        assert r >= 0.9, (el, r)
        # the slice seen at the map's angle (0°): its columns summed along the beam, the
        # stage's x running against the sample's
        seen = np.nansum(slices[el], axis=0)[::-1] * STEP
        rows = m[inside > 0.5].mean(axis=0)
        assert correlation(seen, rows) >= 0.9, el
    # the Bragg maps: the electrode's spinel only in the layer, the holder everywhere
    assert np.nanmax(bragg["LiMn2O4"][inside < 0.5]) < 0.1
    assert np.nanmax(bragg["PEEK"][inside < 0.5]) > 0.5
    np.testing.assert_allclose(rgb[..., 0], np.clip(np.nan_to_num(bragg["LiMn2O4"]), 0, 1))


def test_a_scan_with_elements_the_sdd_cannot_see_is_refused_before_it_moves(
    beamline, poni_file, sdd
) -> None:
    RE = RunEngine({})
    stage = beamline.stage
    x0, rot0 = float(stage.x.position), float(stage.rot.position)
    starts: list[dict] = []
    RE.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    for elements, needle in (((), "name the elements"), (("U",), r"U's K.*outside")):
        with pytest.raises(XrfError, match=needle):
            RE(
                xrdct_scan(
                    beamline.det, stage, beamline.diode, [0.0, 90.0], [x0 + 0.1, x0 + 0.2],
                    poni_file=str(poni_file), xrf=sdd, elements=elements,
                )
            )  # fmt: skip
    assert not starts
    assert float(stage.x.position) == pytest.approx(x0, abs=1e-4)
    assert float(stage.rot.position) == pytest.approx(rot0, abs=1e-3)


def test_map_files_number_on_with_scan_files(tmp_path: Path) -> None:
    from operando.live_processing.files.naming import last_sequence

    assert last_sequence(tmp_path / "none") == 0
    (tmp_path / "scan0002_a.h5").touch()
    (tmp_path / "map0005_b.h5").touch()
    (tmp_path / "scan0009_c.live.h5").touch()  # a live file keeps no number
    assert last_sequence(tmp_path) == 5
