"""#16: every run in Tiled through bluesky's TiledWriter; a store that dies is synced after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from store_helpers import operando, served, spooled_counts, store_counts

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
    from tiled.client import from_uri
    from tiled.queries import Key

    res, out = stored_demo
    assert "run store: 5 runs" in res.stdout and "from tiled.client import from_uri" in res.stdout
    with served(out) as url:
        runs = from_uri(url)  # reading needs no key
        scans = runs.search(Key("start.scan_kind") == "xrdct_step")
        assert len(scans) == 2
        found = runs.search(Key("start.lithium_x") > 0.5).search(
            Key("start.scan_kind") == "xrdct_step"
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
    from tiled.client import from_uri

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
    res = operando("store", "sync", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    uploaded = int(res.stdout.split(" uploaded now")[0].rsplit(" ", 1)[1])
    assert uploaded >= 1, res.stdout
    with served(out) as url:
        runs = from_uri(url)
        assert len(runs) == 5
        for path in spool:
            assert store_counts(runs[path.stem]) == spooled_counts(path), path.stem
            if runs[path.stem].metadata["start"].get("scan_kind"):
                assert "processed" in runs[path.stem]  # its scan file, registered by the sync
    again = operando("store", "sync", str(out))  # nothing left to do
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
