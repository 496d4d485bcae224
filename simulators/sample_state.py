"""The simulated sample's state for each detector series: lithiated to the cell's x
when the series was armed.

The IOC renders frames on a thread of its own, behind the acquisition when the scan is
faster than the rendering (a fly scan): the sample a series shows is captured at its
arm (:meth:`SampleState.capture`) and applied when the render thread reaches the
series' start, so a cell charged meanwhile does not leak into a scan that was over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..protocols import stream_v2 as sv2
from .lithiation import lithiate
from .phantom import Phantom
from .render import FrameRenderer


@dataclass(frozen=True)
class Armed:
    """What a series was armed with: the sample as built and the cell's x then, the
    renderer of its geometry, and where its ground truth goes."""

    base: Phantom
    x: float
    renderer: FrameRenderer
    truth_dir: Path | None


class SampleState:
    """Before each detector series: lithiate the phantom to the cell's x at its arm.

    Writes the ground truth of that series beside the phantom file
    (``ground_truth/truth_<series uid>.h5``) and names it, with x, in the series' start message.
    The IOC's side (:meth:`change_sample`, ``cell_x``, ``renderer``) is read at each arm
    (:meth:`capture`); the render thread's side (:meth:`__call__`) uses only what was
    captured, so a sample changed while frames of the last one wait is no race.
    """

    def __init__(
        self, base: Phantom, x_ref: float, renderer: FrameRenderer, truth_dir: Path | None
    ) -> None:
        self.base, self.x_ref, self.renderer, self.truth_dir = base, x_ref, renderer, truth_dir
        self.cell_x: float = float("nan")
        self._made: tuple[Phantom, float, Phantom] | None = None  # base, x, lithiated

    def change_sample(self, base: Phantom, renderer: FrameRenderer, truth_dir: Path) -> None:
        """A new sample, rendered by ``renderer``, from the next series armed on."""
        self.base, self.renderer, self.truth_dir = base, renderer, truth_dir

    def capture(self) -> Armed:
        """At a series' arm: the state its frames are to show."""
        return Armed(self.base, self.cell_x, self.renderer, self.truth_dir)

    def sample(self, base: Phantom, x: float) -> Phantom:
        """``base`` lithiated to ``x`` (as built without a cell: x NaN); the last one is kept."""
        if not math.isfinite(x):
            return base
        made = self._made
        if made is None or made[0] is not base or abs(made[1] - x) > 1e-5:
            made = self._made = (base, x, lithiate(base, x, self.x_ref))
        return made[2]

    def __call__(self, start: sv2.StartMessage, armed: Armed) -> None:
        """In render order, as the series ``start`` begins: set the sample it was armed
        with on its renderer."""
        phantom = self.sample(armed.base, armed.x)
        # this series' renderer (one per detector distance) renders the sample as it was
        if armed.renderer.phantom is not phantom:
            armed.renderer.set_phantom(phantom)
        if self._made is not None and phantom is self._made[2]:
            start.user_data["lithium_x"] = self._made[1]
        if armed.truth_dir is not None:
            path = armed.truth_dir / f"truth_{start.series_unique_id}.h5"
            phantom.save(path)
            start.user_data["ground_truth"] = str(path)
