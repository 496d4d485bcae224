"""The simulated detector renders each series' sample as the cell was when the series was
armed, however far the rendering lags behind the acquisition (a fast fly scan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zmq

from operando.protocols import stream_v2 as sv2
from operando.simulators.frame_streamer import FrameStreamer
from operando.simulators.lithiation import lithiate
from operando.simulators.phantom import Phantom, default_phantom
from operando.simulators.render import FrameRenderer, default_integrator
from operando.simulators.sample_state import SampleState

X_REF = 0.98


def streaming(base: Phantom, truth_dir: Path) -> tuple[SampleState, FrameStreamer, zmq.Socket]:
    """The IOC's sample state and frame streamer (its render thread not yet started, as
    if busy), and a consumer of its stream."""
    renderer = FrameRenderer(base, default_integrator())
    state = SampleState(base, X_REF, renderer, truth_dir)
    streamer = FrameStreamer(renderer, "tcp://127.0.0.1:*", prepare=state)
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.connect(streamer.address)
    return state, streamer, pull


def drain(streamer: FrameStreamer, pull: zmq.Socket, n: int) -> list[sv2.Message]:
    """Start the render thread and take the ``n`` messages its queue makes."""
    streamer.start()
    got: list[sv2.Message] = []
    while len(got) < n:
        assert pull.poll(30_000), "the streamer sent nothing for 30 s"
        got.append(sv2.decode(pull.recv()))
    streamer.close()
    pull.close(linger=0)
    return got


def start(series: int) -> sv2.StartMessage:
    return sv2.StartMessage(series, f"uid{series}", 2, 10, 10, 1e-4, 1e-4, 0.01, 0.01, 0.248,
                            1.0, 5.0, 5.0, {})  # fmt: skip


def test_a_series_shows_the_cell_at_its_arm_not_when_its_frames_are_rendered(
    tmp_path: Path,
) -> None:
    base = default_phantom(8, 0.15)
    state, streamer, pull = streaming(base, tmp_path)
    # two series armed while the render thread is busy (not yet started): the first
    # with the cell at x = 0.95, the second after a charge to 0.80
    for series, x in ((1, 0.95), (2, 0.80)):
        state.cell_x = x
        streamer.jobs.put((start(series), None, "", "", streamer.capture()))
        for k in range(2):
            streamer.jobs.put({"angle": 0.0, "translation": 0.0, "exposure": 0.01, "flux": 1.0,
                               "series_id": series, "series_uid": f"uid{series}",
                               "image_id": k, "t_start": 0.0, "user_data": {}})  # fmt: skip
        streamer.jobs.put(sv2.EndMessage(series, f"uid{series}"))
    state.cell_x = 0.60  # and charged further before any of it is rendered
    got = drain(streamer, pull, 8)  # 2 × (start, 2 frames, end)
    starts = [m for m in got if isinstance(m, sv2.StartMessage)]
    assert [s.user_data["lithium_x"] for s in starts] == [0.95, 0.80]
    frames = [m for m in got if isinstance(m, sv2.ImageMessage)]
    truths = {x: lithiate(base, x, X_REF) for x in (0.95, 0.80, 0.60)}
    for s, x in zip(starts, (0.95, 0.80), strict=True):
        truth = Phantom.load(Path(s.user_data["ground_truth"]))  # the series' ground truth
        for name, lattice in truths[x].lattice_a.items():
            assert np.allclose(truth.lattice_a[name], lattice), (x, name)
    # and each series' frames are Poisson draws about that sample's pattern (reduced
    # chi-square near 1), not about the others'
    lam = {x: FrameRenderer(ph, default_integrator()).expected(0.0, 0.0, 0.01, 1.0, None)
           for x, ph in truths.items()}  # fmt: skip
    for n, x in enumerate((0.95, 0.80)):
        counts = np.stack([f.data for f in frames[2 * n : 2 * n + 2]]).astype(float)
        fits = {y: chi2(counts, lam[y]) for y in lam}
        assert abs(fits[x] - 1.0) < 0.05 and min(fits, key=fits.__getitem__) == x, (x, fits)


def chi2(counts: np.ndarray, lam: np.ndarray) -> float:
    """Reduced chi-square of Poisson ``counts`` about ``lam`` (where λ > 0.5)."""
    m = lam > 0.5
    return float(np.mean((counts[:, m] - lam[m]) ** 2 / lam[m]))


def test_a_sample_changed_while_a_series_waits_to_render_leaves_that_series_alone(
    tmp_path: Path,
) -> None:
    """The sample changer takes a grid of another size while the last sample's series is
    still queued: that series renders and records its own sample, the next the new one."""
    base = default_phantom(8, 0.15)
    state, streamer, pull = streaming(base, tmp_path)
    grain = np.zeros((5, 5))
    grain[1, 3] = 1.0
    other = Phantom(0.2, {"Al": grain}, {"Al": np.where(grain > 0, 4.0495, 0.0)})
    for series in (1, 2):
        if series == 2:  # what the IOC does on a put to sim:Phantom
            state.change_sample(other, FrameRenderer(other, default_integrator()), tmp_path)
        streamer.jobs.put((start(series), None, "", "", streamer.capture()))
        frame = {"angle": 0.0, "translation": 0.0, "exposure": 0.01, "flux": 1.0, "image_id": 0,
                 "series_id": series, "series_uid": f"uid{series}", "t_start": 0.0}  # fmt: skip
        streamer.jobs.put({**frame, "user_data": {}, "renderer": state.renderer})
        streamer.jobs.put(sv2.EndMessage(series, f"uid{series}"))
    got = drain(streamer, pull, 6)
    starts = [m for m in got if isinstance(m, sv2.StartMessage)]
    shapes = [Phantom.load(Path(s.user_data["ground_truth"])).shape for s in starts]
    assert shapes == [(8, 8), (5, 5)]
    assert sum(isinstance(m, sv2.ImageMessage) for m in got) == 2  # the renderer lived on
