"""The simulator's science against independent ground truth."""

import numpy as np
import pytest

from operando.materials.crystal import closure, orbit
from operando.materials.phases import FD3M, FM3M, LIBRARY
from operando.simulators.phantom import Phantom, default_phantom
from operando.simulators.render import FrameRenderer, default_integrator, ray_weights


def test_fd3m_group_and_wyckoff_multiplicities() -> None:
    ops = closure(list(FD3M))
    assert len(ops) == 192
    assert len(orbit(ops, (1 / 8, 1 / 8, 1 / 8))) == 8  # 8a
    assert len(orbit(ops, (0.5, 0.5, 0.5))) == 16  # 16d
    assert len(orbit(ops, (0.263, 0.263, 0.263))) == 32  # 32e
    assert len(closure(list(FM3M))) == 192


def test_spinel_and_fcc_lines() -> None:
    lmo = LIBRARY["LiMn2O4"]
    assert lmo.strongest_line() == pytest.approx(2 * np.pi * np.sqrt(3) / 8.245)  # (111)
    n_al, _ = LIBRARY["Al"]._lines
    assert {3, 4, 8, 11, 12}.issubset(set(n_al.tolist()))  # fcc: 111 200 220 311 222
    assert not {1, 2, 5, 6}.intersection(set(n_al.tolist()))  # mixed parity absent


def test_ray_weights_give_chord_length_through_a_disc() -> None:
    n, px, r = 64, 0.02, 0.4
    ph = default_phantom(n, px)
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * px
    disc = (np.hypot(xx, yy) <= r).astype(float)
    for theta, x in ((0.0, 0.0), (37.0, 0.2), (123.0, -0.3)):
        idx, w = ray_weights(n, px, theta, x)
        assert (w * disc.ravel()[idx]).sum() == pytest.approx(2 * np.sqrt(r * r - x * x), rel=0.05)
    assert ph.shape == (n, n)


def test_rendered_frame_integrates_to_the_phase_lines() -> None:
    n = 16
    frac = {"Al": np.ones((n, n))}
    ph = Phantom(0.05, frac, {"Al": np.full((n, n), 4.0495)})
    ai = default_integrator()
    frame = FrameRenderer(ph, ai).frame(0.0, 0.0, 0.01, 1.0, np.random.default_rng(0))
    res = ai.integrate1d(
        frame,
        800,
        unit="q_A^-1",
        radial_range=(1.0, 4.6),
        polarization_factor=0.99,
        method=("no", "csr", "cython"),
    )
    q, i = res.radial, res.intensity
    peaks = [
        q[k]
        for k in range(1, len(q) - 1)
        if i[k] > i[k - 1] and i[k] >= i[k + 1] and i[k] > 0.2 * i.max()
    ]
    expected = 2 * np.pi * np.sqrt([3, 4, 8]) / 4.0495  # 111, 200, 220 (311 is beyond 4.6)
    for e in expected:
        assert min(abs(p - e) for p in peaks) < 0.01


@pytest.mark.parametrize(
    ("lattice", "needle"),
    [(np.nan, "NaN or infinite"), (-8.2, "lattice parameter > 0"), (0.0, "lattice parameter > 0")],
)
def test_unphysical_phantoms_are_refused(tmp_path, lattice: float, needle: str) -> None:
    from operando.simulators.phantom import Phantom, PhantomError

    frac = np.zeros((4, 4))
    frac[1:3, 1:3] = 1.0
    lat = np.where(frac > 0, lattice, 0.0)
    with pytest.raises(PhantomError, match=needle):
        Phantom(0.05, {"LiMn2O4": frac}, {"LiMn2O4": lat}).validate()


def test_unphysical_poni_values_are_refused(tmp_path) -> None:
    from operando.live_processing.integration.integrate import GeometryError, load_poni

    good = "Detector: Pilatus1M\nPoni1: 0.05\nPoni2: 0.05\nRot1: 0\nRot2: 0\nRot3: 0\n"
    for bad, key in (
        ("Distance: -0.1\nWavelength: 1e-10\n", "Distance"),
        ("Distance: nan\nWavelength: 1e-10\n", "Distance"),
        ("Distance: 0.1\nWavelength: 0\n", "Wavelength"),
    ):
        path = tmp_path / "bad.poni"
        path.write_text(good + bad)
        with pytest.raises(GeometryError, match=rf"{key} = .* must be finite and > 0"):
            load_poni(path)
