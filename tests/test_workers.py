"""The processor with two integration worker processes: every frame placed once, exactly.

With ``--method trimmed`` the workers run the trimmed mean, dead pixels masked per frame.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

from operando.live_processing.integration.integrate import Integrator
from operando.protocols import stream_v2 as sv2
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators import launcher
from operando.simulators.render import default_integrator

N_A, N_T, SERIES = 6, 10, 3


@pytest.mark.parametrize("method", ["mean", "trimmed"])
def test_two_workers_place_every_frame_once(tmp_path: Path, method: str) -> None:
    ai = default_integrator(binning=8)
    poni = tmp_path / "det.poni"
    ai.write(str(poni))
    rng = np.random.default_rng(2)
    frames = [rng.poisson(50 + k, ai.detector.shape).astype(np.int32) for k in range(N_A * N_T)]
    for f in frames[::7]:
        f.ravel()[rng.integers(0, f.size, 40)] = -1  # dead pixels in some frames
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    res_port = results.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    src_port = push.bind_to_random_port("tcp://127.0.0.1")
    proc = launcher.start_processor(
        f"tcp://127.0.0.1:{src_port}",
        f"tcp://127.0.0.1:{res_port}",
        tmp_path,
        120,
        workers=2,
        method=method,
    )
    docs = ctx.socket(zmq.PUB)
    docs.setsockopt(zmq.SNDHWM, 0)  # a PUB drops past its high-water mark; keep every event
    docs.connect(proc.info["docs"])
    reports: list[dict] = []
    try:
        while True:
            docs.send(b" probe x")
            if results.poll(200) and results.recv_json()["event"] == "probe":
                break

        def send(name: str, doc: dict) -> None:
            docs.send(b" " + name.encode() + b" " + json.dumps(doc).encode())

        geom = XrdctGeometry(
            list(np.linspace(0, 180, N_A, endpoint=False)),
            list((np.arange(N_T) - N_T / 2) * 0.01),
            False,
            "f",
            "s",
            "m",
            str(poni),
            {"name": "det"},
        )
        send("start", {"uid": "r", "time": time.time(), "xrdct": geom.to_md()})
        conf = {"det": {"data": {"s": SERIES}}}
        send(
            "descriptor",
            {"uid": "d", "run_start": "r", "name": "primary", "time": 0.0, "data_keys": {}}
            | {"configuration": conf},
        )
        for k in range(N_A * N_T):
            send(
                "event",
                {"descriptor": "d", "uid": f"e{k}", "seq_num": k + 1, "time": 0.0}
                | {"data": {"f": k, "m": 2.0}, "timestamps": {"f": 0.0, "m": 0.0}},
            )
        for k, f in enumerate(frames):
            push.send(sv2.encode(sv2.image_message(SERIES, "u", k, f, 0.0, 0.01, {})))
        push.send(sv2.encode(sv2.EndMessage(SERIES, "u")))
        send("stop", {"uid": "s", "run_start": "r", "time": time.time()})
        while not reports or reports[-1]["event"] != "written":
            assert results.poll(60_000), f"no report; got {reports[-3:]}"
            reports.append(results.recv_json())
    finally:
        proc.stop()
        ctx.destroy(linger=0)
    written = reports[-1]
    assert written["missing"] == [] and written["duplicates"] == 0
    assert any(r["event"] == "lag" and "frames_behind" in r for r in reports)
    with h5py.File(written["path"]) as f:
        sino = f["entry/sinogram/data"][()]
    ref = Integrator(ai, 120, method=method)
    for k, frame in enumerate(frames):
        expected = ref.integrate(frame)[1]
        np.testing.assert_allclose(sino[k // N_T, k % N_T], expected, rtol=1e-5, atol=1e-6)
