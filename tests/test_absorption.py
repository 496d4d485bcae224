"""#17 (full-field tomography, reconstruction): frames of the simulated camera, flat- and
dark-corrected and reconstructed slice by slice as they come, give the phantom's
attenuation map: its values, and each phase told apart from the others."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from operando.live_processing.tomography.absorption import AbsorptionVolume
from operando.simulators.camera import ProjectionRenderer
from operando.simulators.phantom import default_phantom


def truth_on_grid(r: ProjectionRenderer, image: np.ndarray) -> np.ndarray:
    """The phantom's map ``image`` (its own grid) on the reconstruction's grid."""
    n, m = r.shape[1], image.shape[0]
    at = (np.arange(n) - (n - 1) / 2) * r.pixel / r.phantom.pixel_size + (m - 1) / 2
    yy, xx = np.meshgrid(at, at, indexing="ij")
    return scipy.ndimage.map_coordinates(image, [yy, xx], order=1, cval=0.0)


@pytest.fixture(scope="module")
def scanned() -> tuple[ProjectionRenderer, AbsorptionVolume, list[np.ndarray]]:
    """200 projections over 360° (20 ms, full beam), 3 darks, 2 flats before, 2 after."""
    r = ProjectionRenderer(default_phantom())
    rng = np.random.default_rng(4)
    angles = np.linspace(0.0, 360.0, 200, endpoint=False)
    vol = AbsorptionVolume(angles, r.shape, r.pixel)
    for _ in range(3):
        vol.add_dark(r.frame(0.0, 0.0, 0.02, 0.0, rng))  # shutter closed
    early = [r.frame(0.0, 0.0, 0.02, 1.0, rng)]  # before any flat: it waits
    vol.add_projection(0, early[0])
    assert vol.fbp.n_added == 0
    for _ in range(2):
        vol.add_flat(r.frame(0.0, 2.0, 0.02, 1.0, rng))  # the sample 2 mm out
    assert vol.fbp.n_added == 1
    slices = []
    for k, angle in enumerate(angles[1:], start=1):
        vol.add_projection(k, r.frame(float(angle), 0.0, 0.02, 1.0, rng))
        if k in (50, 199):
            slices.append(vol.volume().mean(axis=0))  # every slice is this one (a 2-D cell)
    for _ in range(2):
        vol.add_flat(r.frame(0.0, 2.0, 0.02, 1.0, rng))
    return r, vol, slices


def test_the_volume_is_the_phantoms_attenuation(scanned) -> None:
    r, vol, slices = scanned
    mu = truth_on_grid(r, r.mu_full)
    final = vol.final()
    for name, image in (("live", slices[-1]), ("final", final.mean(axis=0))):
        corr = np.corrcoef(image.ravel(), mu.ravel())[0, 1]
        assert corr >= 0.99, (name, corr)
    # each phase where it fills a voxel: its own attenuation, apart from the others'
    levels = {}
    for phase, frac in r.phantom.fraction.items():
        there = truth_on_grid(r, frac) >= 0.95
        if there.sum() < 20:
            continue
        levels[phase] = float(np.median(final.mean(axis=0)[there]))
        expected = float(np.median(mu[there]))
        assert levels[phase] == pytest.approx(expected, rel=0.15), (phase, levels, expected)
    print(f"absorption: μ per phase {levels}")
    assert {"LiMn2O4", "Al", "PEEK"} <= set(levels), levels
    assert levels["LiMn2O4"] > 2 * levels["Al"] > 2 * levels["PEEK"], levels
    # live: the slice sharpens as projections come in
    err = [np.sqrt(np.mean((s - mu) ** 2)) for s in slices]
    assert err[1] < err[0], err


def test_no_flat_no_final(scanned) -> None:
    r = scanned[0]
    vol = AbsorptionVolume(np.linspace(0, 180, 4, endpoint=False), r.shape, r.pixel)
    with pytest.raises(ValueError, match="no flat field"):
        vol.final()
