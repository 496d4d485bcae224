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
    """What a series was armed with: the cell's x then, and the renderer of its geometry."""

    x: float
    renderer: FrameRenderer


class SampleState:
    """Before each detector series: lithiate the phantom to the cell's x at its arm.

    Writes the ground truth of that series beside the phantom file
    (``ground_truth/truth_<series uid>.h5``) and names it, with x, in the series' start message.
    """

    def __init__(
        self, base: Phantom, x_ref: float, renderer: FrameRenderer, truth_dir: Path | None
    ) -> None:
        self.base, self.x_ref, self.renderer, self.truth_dir = base, x_ref, renderer, truth_dir
        self.cell_x: float = float("nan")
        self.applied: float | None = None
        self.phantom = base

    def capture(self) -> Armed:
        """At a series' arm: the state its frames are to show."""
        return Armed(self.cell_x, self.renderer)

    def __call__(self, start: sv2.StartMessage, armed: Armed | None = None) -> None:
        """In render order, as the series ``start`` begins: set its renderer's sample."""
        x = self.cell_x if armed is None else armed.x
        renderer = self.renderer if armed is None else armed.renderer
        if not math.isfinite(x) and self.applied is not None:  # no cell any more: as built
            self.phantom, self.applied = self.base, None
        if math.isfinite(x) and (self.applied is None or abs(x - self.applied) > 1e-5):
            self.phantom = lithiate(self.base, x, self.x_ref)
            self.applied = x
        # this series' renderer (one per detector distance) renders the sample as it is
        if renderer.phantom is not self.phantom:
            renderer.set_phantom(self.phantom)
        if self.applied is not None:
            start.user_data["lithium_x"] = self.applied
        if self.truth_dir is not None:
            path = self.truth_dir / f"truth_{start.series_unique_id}.h5"
            self.phantom.save(path)
            start.user_data["ground_truth"] = str(path)
