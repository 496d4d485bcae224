"""A short ``repr`` for devices that a plan touches at every point."""

from __future__ import annotations


class BriefRepr:
    """``Motor('PFX:x', name='stage_x')`` instead of ophyd's full attribute listing.

    ophyd puts ``repr(device)`` into every status it creates (for tracing); for a
    device with many components that listing costs about a millisecond, twice per
    point of a step scan.
    """

    prefix: str
    name: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r}, name={self.name!r})"
