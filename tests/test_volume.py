"""#17 acceptance 5 (volumes): a scaled-down ``volume`` preset's z planes, each its own
run and file, come out of the live processor as one volume file whose default plot is
one 3-D NXdata (z, y, x) with the z axis the planes were measured at."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np
import pytest
import zmq
from bluesky import RunEngine

from operando.control.session import connect_publisher
from operando.live_processing.files.volume import plane_maps, write_volume
from operando.plans.preset_scan import preset_xrdct
from operando.protocols.processing import ProcessingSettings
from operando.simulators import launcher


@pytest.fixture()
def mapping_processor(ioc, tmp_path) -> Iterator[tuple[launcher.SimProcess, zmq.Socket]]:
    """A live processor that also makes Q-screening maps."""
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
    settings = ProcessingSettings(bins=200, qscreen=("LiMn2O4", "Al"))
    proc = launcher.start_processor(ioc.info["stream"], addr, tmp_path, 200, settings=settings)
    yield proc, results
    proc.stop()
    ctx.destroy(linger=0)


def test_a_volume_preset_becomes_one_3d_nxdata(beamline, mapping_processor, poni_file) -> None:
    proc, results = mapping_processor
    pub = connect_publisher(proc.info["docs"], results)
    RE = RunEngine({})
    RE.subscribe(pub)
    starts: list[dict] = []
    RE.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    z0 = float(beamline.stage.z.position)
    try:  # 20x fewer points, 3 planes of the 20 (n_z 60 / 20), 2 µm apart
        RE(preset_xrdct(beamline.det, beamline.stage, beamline.diode, "volume",
                        poni_file=str(poni_file), scale=20, n_z=60))  # fmt: skip
        reports = []
        while results.poll(60000):
            msg = results.recv_json()
            reports.append(msg)
            if msg["event"] in ("volume", "error"):
                break
    finally:
        pub.close()
    assert reports and reports[-1]["event"] == "volume", reports[-3:]
    written = [r["path"] for r in reports if r["event"] == "written"]
    assert len(starts) == 3 and len(written) == 3 and reports[-1]["missing"] == []
    with h5py.File(reports[-1]["path"]) as f:
        entry = f["entry"]
        vol = entry[entry.attrs["default"]]
        assert vol.attrs["NX_class"] == "NXdata" and list(vol.attrs["axes"]) == ["z", "y", "x"]
        data = vol["data"][()]
        assert data.shape == (3, 5, 5) and vol["z"].attrs["units"] == "mm"
        assert vol["z"][()] == pytest.approx(z0 + np.arange(3) * 0.002)
        full = entry["reconstruction/data"][()]
        assert full.shape == (3, 5, 5, 200)
        names = list(entry["planes"].asstr()[()])
        maps = {name: entry["maps"][name]["data"] for name in plane_maps_of(f)}
        assert maps, "no maps in the volume"
        for k, path in enumerate(sorted(written)):  # each plane is its run's file
            assert names[k] == path.rsplit("/", 1)[1]
            with h5py.File(path) as p:
                np.testing.assert_array_equal(full[k], p["entry/reconstruction/data"][()])
                assert p["entry"].attrs["volume_index"] == k
                for name, m in plane_maps(p).items():  # every map, in its plane
                    assert maps[name].shape == (3, 5, 5)
                    np.testing.assert_array_equal(maps[name][k], m.astype(np.float32))
        assert np.isfinite(data).all()


def plane_maps_of(f: h5py.File) -> list[str]:
    """The volume's 3-D maps, by their path under ``entry/maps``."""
    found: list[str] = []
    f["entry/maps"].visititems(
        lambda n, o: found.append(n) if isinstance(o, h5py.Group) and "data" in o else None
    )
    return found


def test_a_missing_plane_is_nan_and_named(tmp_path) -> None:
    """A plane whose run wrote no file: NaN in the volume, listed; never a file overwritten."""
    q, xy = np.linspace(1, 2, 4), np.arange(3) * 0.01
    paths = []
    for k in range(2):
        p = tmp_path / f"scan000{k + 1}_p{k}.h5"
        with h5py.File(p, "w") as f:
            rec = f.create_group("entry/reconstruction")
            rec["data"] = np.full((3, 3, 4), k + 1.0, dtype=np.float32)
            rec["q"], rec["x"], rec["y"] = q, xy, xy
        paths.append(p)
    out = write_volume(tmp_path / "volume_v.h5", [(0.0, paths[0]), (0.1, None), (0.2, paths[1])])
    with h5py.File(out) as f:
        total = f["entry/volume/data"][()]
        assert np.isnan(total[1]).all() and list(f["entry/volume/missing_planes"][()]) == [1]
        assert total[2] == pytest.approx(np.full((3, 3), 2.0 * 4 * (q[1] - q[0])))
    with pytest.raises(FileExistsError):
        write_volume(out, [(0.0, paths[0])])
    with pytest.raises(FileNotFoundError, match="none of its 1 planes"):
        write_volume(tmp_path / "v2.h5", [(0.0, None)])
