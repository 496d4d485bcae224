"""#16: every run in Tiled through bluesky's TiledWriter; a store that dies is synced after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from store_helpers import operando, served, spooled_counts, store_counts, tiled

from operando.control.config import load_config
from operando.control.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored_demo(tmp_path_factory):
    """A small demo with its embedded run store (the default)."""
    out = tmp_path_factory.mktemp("stored") / "out"
    res = operando("demo", "--size", "micro", "--no-view", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return res, out


def scan_file(out: Path, uid: str) -> Path:
    (path,) = out.glob(f"scan*_{uid}.h5")
    return path


def test_the_demo_runs_are_found_by_metadata_and_read_as_tables_and_arrays(stored_demo) -> None:
    """#16 acceptance 1: both scans found by lithium content; primary stream and
    electrochemistry as tables; sinogram and reconstruction as arrays equal to the file's."""
    from tiled.queries import Key

    res, out = stored_demo
    assert "run store: 5 runs" in res.stdout and "from tiled.client import from_uri" in res.stdout
    with served(out) as url, tiled(url) as runs:  # reading needs no key; the demo fly-scans
        scans = runs.search(Key("start.scan_kind") == "xrdct_fly")
        assert len(scans) == 2
        found = runs.search(Key("start.lithium_x") > 0.5).search(
            Key("start.scan_kind") == "xrdct_fly"
        )
        assert sorted(found) == sorted(scans)
        charged = list(runs.search(Key("start.lithium_x") < 0.95))
        assert len(charged) == 1  # the second scan, after the charge
        first, second = sorted(scans.values(), key=lambda r: r.metadata["start"]["time"])
        assert second.metadata["start"]["uid"] == charged[0]
        assert first.metadata["start"]["lithium_x"] == pytest.approx(0.98)
        assert 3.5 < second.metadata["start"]["voltage_start"] < 4.4
        for run in (first, second):
            start = run.metadata["start"]
            primary = run["primary"].base["internal"].read()
            assert len(primary) == start["num_points"]
            ec = run["electrochemistry"].base["internal"].read()
            assert len(ec) > 0 and np.isfinite(ec["pstat_voltage"]).all()
            with h5py.File(scan_file(out, start["uid"])) as f:
                for name in ("sinogram/data", "reconstruction/data"):
                    arr = run["processed"]["entry"][name].read()
                    np.testing.assert_array_equal(arr, f[f"entry/{name}"][()])
                    assert arr.size > 0


def test_a_store_that_dies_mid_experiment_is_synced_after(tmp_path: Path) -> None:
    """#16 acceptance 2: the store killed mid-experiment; the demo completes, the backup
    keeps what it missed, and ``operando store sync`` makes the catalog whole."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "operando.control.cli", "demo", "--size", "micro",
           "--no-view", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the store is up: kill it at once
            seen.append(line)
            if "run store: http" in line:
                os.kill(int(line.rsplit("pid", 1)[1].strip(" )\n")), signal.SIGKILL)
                break
        else:
            raise AssertionError("".join(seen))
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    assert "wait in its backup: operando store sync" in stdout
    spool = sorted((out / "documents").glob("*.jsonl"))
    assert len(spool) == 5
    with served(out) as url:
        # a wrong key in [store] is a clear error
        cfg = tmp_path / "beamline.toml"
        cfg.write_text(f'[store]\nuri = "{url}"\napi_key = "wrong"\n')
        res = operando("store", "sync", str(out), "--config", str(cfg))
        assert res.returncode == 2 and "api_key" in res.stderr and "Traceback" not in res.stderr
        # the server named in [store], with its key
        key = (out / "store" / "api_key").read_text()
        cfg.write_text(f'[store]\nuri = "{url}"\napi_key = "{key}"\n')
        res = operando("store", "sync", str(out), "--config", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        assert url in res.stdout
        uploaded = int(res.stdout.split(" uploaded now")[0].rsplit(" ", 1)[1])
        assert uploaded >= 1, res.stdout
        with tiled(url) as runs:
            assert len(runs) == 5
            for path in spool:
                assert store_counts(runs[path.stem]) == spooled_counts(path), path.stem
                if runs[path.stem].metadata["start"].get("scan_kind"):
                    assert "processed" in runs[path.stem]  # its file, registered by the sync
        again = operando("store", "sync", str(out))  # the running server; nothing to do
        assert again.returncode == 0 and " 0 uploaded now, 5 were complete" in again.stdout


def test_store_config_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "beamline.toml"
    bad.write_text('[store]\nuri = "ftp://example.org"\n')
    with pytest.raises(ConfigError, match=r"\[store\] uri = 'ftp://example.org'"):
        load_config(bad)
    bad.write_text('[store]\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(bad)
    res = operando("store", "sync", str(tmp_path / "nothing"))
    assert res.returncode == 2 and "no such folder" in res.stderr


def max_relative_deviation(a: Path, b: Path, names: list[str]) -> float:
    worst = 0.0
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in names:
            x, y = fa[name][()], fb[name][()]
            assert x.shape == y.shape and np.array_equal(np.isnan(x), np.isnan(y)), name
            ok = np.isfinite(x)
            worst = max(worst, float(np.max(np.abs(x[ok] - y[ok])) / np.max(np.abs(x[ok]))))
    return worst


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reprocess_gives_the_live_numbers_and_new_versions_beside_the_original(
    stored_demo,
) -> None:
    """#16 acceptance 3: the same settings give the live file's numbers (on a Dask
    LocalCluster); the trimmed mean and a new q range give a new version, linked to the
    original in the store, and the original is untouched."""
    _res, out = stored_demo
    first = sorted(out.glob("scan0001_*.h5"))[0]
    uid = first.stem.split("_", 1)[1]
    before = sha256(first)
    with served(out) as url:  # the new versions are registered through it
        dask = ("--workers", "1", "--dashboard", "127.0.0.1:0")
        same = operando("reprocess", str(first), *dask)
        assert same.returncode == 0, same.stderr[-3000:]
        v2 = Path(same.stdout.strip().splitlines()[-1])
        assert v2 == out / "reprocessed" / f"{first.stem}.v2.h5"
        with h5py.File(first) as f:
            maps = [f"entry/maps/qscreen/{k}/data" for k in f["entry/maps/qscreen"]]
        names = ["entry/sinogram/data", "entry/reconstruction/data", *maps]
        assert len(maps) >= 2
        assert max_relative_deviation(first, v2, names) <= 1e-5
        other = operando("reprocess", uid[:8], "--dir", str(out), "--method", "trimmed",
                         "--q-range", "1.0", "4.0", *dask)  # fmt: skip
        assert other.returncode == 0, other.stderr[-3000:]
        v3 = Path(other.stdout.strip().splitlines()[-1])
        assert v3.name == f"{first.stem}.v3.h5" and v2.is_file()
        assert sha256(first) == before  # the original is untouched
        with h5py.File(v3) as f:
            q = f["entry/reconstruction/q"][()]
            assert 1.0 <= q[0] < q[-1] <= 4.0
            assert json.loads(f["entry/process/settings"][()])["method"] == "trimmed"
            assert f["entry"].attrs["reprocessed_from"] == first.name
            assert f["entry"].attrs["reprocessed_from_sha256"] == before
            assert np.isfinite(f["entry/reconstruction/data"][()]).any()
        with tiled(url) as runs:
            run = runs[uid]
            assert run["processed_v3"].metadata["derived_from"] == "processed"
            assert run["processed_v3"].metadata["settings"]["method"] == "trimmed"
            np.testing.assert_array_equal(
                run["processed_v3"]["entry"]["reconstruction"]["q"].read(), q
            )


def test_reprocess_refuses_what_it_cannot_do(stored_demo, tmp_path: Path) -> None:
    _res, out = stored_demo
    res = operando("reprocess", "00000000", "--dir", str(out))
    assert res.returncode == 2 and "no scan file in" in res.stderr
    first = sorted(out.glob("scan0001_*.h5"))[0]
    res = operando("reprocess", str(first), "--q-range", "4", "1")
    assert res.returncode == 2 and "q_range" in res.stderr
    lonely = tmp_path / first.name  # a scan file without its documents
    lonely.write_bytes(first.read_bytes())
    res = operando("reprocess", str(lonely))
    assert res.returncode == 2 and "documents" in res.stderr and "missing" in res.stderr
