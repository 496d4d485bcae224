"""The display's server on its own: read-only, loopback by default, its state fed by
reports, its arrays read back from the files (#15)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from browser import viewing

from operando.live_processing.display import data
from operando.live_processing.display.state import ViewerState
from operando.live_processing.files.live_file import LiveReconstructionFile

N_Q = 12


def live_file(folder: Path, stem: str = "scan0001_abc") -> tuple[Path, np.ndarray, np.ndarray]:
    """A live file holding 2 of 4 projections of a known volume and sinogram."""
    rng = np.random.default_rng(3)
    grid = np.linspace(-0.1, 0.1, 5)
    q = np.linspace(1.0, 2.0, N_Q)
    angles = np.arange(4) * 45.0
    volume = rng.random((5, 5, N_Q)).astype(np.float32)
    sino = np.full((4, 5, N_Q), np.nan, np.float32)
    sino[:2] = rng.random((2, 5, N_Q))
    path = folder / f"{stem}.live.h5"
    live = LiveReconstructionFile(path, grid, grid, q, angles)
    live.update(volume, np.array([1, 1, 0, 0], bool), sino)
    live.close(remove=False)
    return path, volume, sino


def test_arrays_read_back_from_a_live_file(tmp_path: Path) -> None:
    path, volume, sino = live_file(tmp_path)
    image, projections = data.slice_at(path, True, 7)
    assert projections == 2 and np.array_equal(image, volume[:, :, 7])
    s = data.sinogram_at(path, True, 3)
    assert np.array_equal(s[:2], sino[:2, :, 3]) and np.isnan(s[2:]).all()
    mean = data.pattern(path, True, (1, 2), (0, 4))
    assert np.allclose(mean, volume[1:3, 0:5].reshape(-1, N_Q).mean(axis=0))
    axes = data.axes(path, True)
    assert axes["default_q"] == int(np.argmax(volume[2].sum(axis=0)))
    assert axes["region"] == [0, 4, 0, 4]
    assert data.default_region(120, 120, 2000) == [44, 74, 44, 74]
    assert axes["angle"] == [0.0, 45.0, 90.0, 135.0]
    body, headers = data.encode(image)
    assert headers["X-Shape"] == "5,5" and np.array_equal(np.frombuffer(body, "<f4"), image.ravel())
    with pytest.raises(ValueError, match=r"q index 12 is outside 0\.\.11"):
        data.slice_at(path, True, N_Q)
    with pytest.raises(ValueError, match="outside the 5 x 5 slice"):
        data.pattern(path, True, (7, 9), (0, 1))


def test_state_follows_a_scan_through_its_reports(tmp_path: Path) -> None:
    state = ViewerState()
    live = tmp_path / "scan0001_u1.live.h5"
    final = tmp_path / "scan0001_u1.h5"
    state.apply({"event": "scan", "run": "u1", "experiment": "e", "stem": "scan0001_u1",
                 "n_rows": 4, "time": 100.0, "live": str(live), "file": str(final)})  # fmt: skip
    for k, (t, v) in enumerate([(101.0, 3.9), (102.0, float("nan")), (103.0, 4.0)]):
        state.apply({"event": "ec", "experiment": "e", "time": t, "voltage": v, "current": 1e-3})
        assert state.snapshot()["traces"]["e"] == k + 1
    state.apply({"event": "transition", "experiment": "e", "time": 101.5, "state": "charge"})
    state.apply({"event": "progress", "run": "u1", "rows": 2, "n_rows": 4})
    state.apply({"event": "live", "run": "u1", "path": str(live), "projections": 2})
    state.apply({"event": "not-a-report", "run": "u1"})  # ignored, no change
    snap = state.snapshot()
    (run,) = snap["runs"]
    assert (run["rows"], run["n_rows"], run["projections"], run["status"]) == (2, 4, 2, "running")
    assert run["data_version"] == 1 and snap["version"] == 7
    trace = state.trace_since("e", 1)
    assert trace["time"] == [102.0, 103.0] and trace["next"] == 3
    assert trace["transitions"] == [{"time": 101.5, "state": "charge"}]
    assert trace["windows"] == [[100.0, None, "scan0001_u1"]]
    assert state.runs["u1"].source() is None  # neither file exists yet
    live_file(tmp_path, "scan0001_u1")
    assert state.runs["u1"].source() == (live, True)
    state.apply({"event": "stopped", "run": "u1", "time": 110.0})
    state.apply({"event": "written", "run": "u1", "path": str(final), "missing": [[3, 1]]})
    run = state.snapshot()["runs"][0]
    assert (run["status"], run["stop"], run["missing"]) == ("written", 110.0, 1)


def test_the_server_is_read_only_and_on_loopback(tmp_path: Path) -> None:
    """#15 acceptance 4: nothing but GET/HEAD (and the push socket) is answered, and by
    default the socket is bound to 127.0.0.1 only (read from the kernel's table)."""
    live_file(tmp_path)
    with viewing(tmp_path) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
        ]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, not 0.0.0.0
        assert not any(
            line.split()[1].endswith(f":{port:04X}")
            for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]
        )
        paths = ["", "api/state", "static/app.js", "vendor/plotly.min.js", "ws"]
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("api/state").status_code == 200
            assert client.head("static/app.js").status_code == 200
            for path in paths:
                for method in ("POST", "PUT", "DELETE", "PATCH"):
                    r = client.request(method, path, content=b"x")
                    assert r.status_code in (404, 405), (method, path, r.status_code)
                    assert r.status_code == 405 or path == "ws", (method, path)


def test_view_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    for args, message in (
        ([str(tmp_path), "--port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
        ([], "give a run file or folder, --live ADDRESS, or both"),
        ([str(tmp_path / "nope")], "nope does not exist"),
        (["--live", "127.0.0.1:5"], "give a ZMQ address"),
    ):
        res = subprocess.run(
            [sys.executable, "-m", "operando.control.cli", "view", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    busy.close()
