"""Names on the wire between the control session and the live processor.

- Bluesky stream names the processor reads besides ``primary`` (:mod:`.xrdct`).
- Field-key suffixes of the potentiostat's readings (``<device>_voltage`` …).
- The processor's report events: JSON objects ``{"event": <name>, ...}`` it PUSHes to the
  session's results socket, and publishes to viewers: the same objects, on a PUB socket
  the processor binds (``publish`` in its READY line), as two-part messages
  ``[REPORT_TOPIC, JSON]``. Any number of viewers subscribe; one that falls
  :data:`PUBLISH_HWM` messages behind loses messages, and never slows the processor.
  The events of :data:`VIEWER_ONLY` (the cell's readings, the live file's updates) go to
  the PUB socket only.
- Running slices, for viewers, on the same socket (an XPUB: the processor sees what is
  subscribed). A viewer that subscribes to :func:`slice_topic` ``(iq)`` gets the running
  reconstruction of every scan in progress at q index ``iq`` at once, and again after
  every new row: four-part messages ``[topic, JSON header, slice, sinogram]``, the header
  ``{"run", "q", "projections", "row_at", "time", "slice": [ny, nx], "sinogram":
  [n_angles, n_translations]}`` (``row_at``: epoch s its newest row went into the
  volume; ``time``: when it was published), the images little-endian float32 (the
  sinogram NaN where no frame came yet). At most :data:`MAX_SLICES` q indices are served at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

EC_STREAM = "electrochemistry"  # the cell's V/I/time readings
TRANSITIONS_STREAM = "transitions"  # protocol step changes (plans.protocol_log)

VOLTAGE = "_voltage"  # V
CURRENT = "_current"  # A
CELL_TIME = "_cell_time"  # s on the instrument's clock

REPORT_TOPIC = b"report"  # first part of every published report
PUBLISH_HWM = 1000  # messages queued per viewer before its oldest are dropped
SLICE_TOPIC = b"slice/"  # published running slices: ``slice/<q index>/``
MAX_SLICES = 16  # q indices whose slices are published at once


def slice_topic(iq: int) -> bytes:
    """The topic of the running slices at q index ``iq`` (the closing slash keeps a
    subscription to ``slice/1/`` from matching ``slice/12/``)."""
    return b"%s%d/" % (SLICE_TOPIC, iq)


def slice_index(topic: bytes) -> int | None:
    """The q index of a :func:`slice_topic`, or None if ``topic`` is not one."""
    if not topic.startswith(SLICE_TOPIC) or not topic.endswith(b"/"):
        return None
    digits = topic[len(SLICE_TOPIC) : -1]
    return int(digits) if digits.isdigit() else None


class Report(StrEnum):
    """The ``event`` of a processor report."""

    READY = "ready"  # serving; ``docs``, ``publish``: the bound addresses
    PROBE = "probe"  # a probe came through; ``token`` echoed
    PROGRESS = "progress"  # a row is in; ``run``, ``rows``, ``n_rows``, ``placed`` …
    LAG = "lag"  # frames at the workers; ``frames_behind``, ``received``, ``integrated``
    WRITTEN = "written"  # a run's file; ``run``, ``path``, ``missing``, ``duplicates``,
    # ``maps_s`` (seconds its lattice maps and profiles took) …
    ERROR = "error"  # something failed and was skipped; ``source``, ``error`` (one line)
    SCAN = "scan"  # a scan run began: ``run``, ``experiment``, ``stem``, ``n_rows``, ``time``,
    # ``live`` (its live file, or None), ``file`` (where its final file will be)
    STOPPED = "stopped"  # a scan run's stop document: ``run``, ``time``, ``exit_status``
    LIVE = "live"  # the live file was rewritten: ``run``, ``path``, ``projections``,
    # ``placed`` (cells), ``row_at`` (epoch s the latest of its rows went into the volume)
    EC = "ec"  # a reading of the cell: ``experiment``, ``time`` (epoch s), ``voltage``, ``current``
    TRANSITION = "transition"  # a protocol step changed: ``experiment``, ``time``, ``state`` …
    VOLUME = "volume"  # a volume's planes assembled: ``path``, ``planes``, ``missing``


VIEWER_ONLY = frozenset({Report.LIVE, Report.EC, Report.TRANSITION})


def reading(data: Mapping[str, Any], suffix: str, default: Any = None) -> Any:
    """The value of the first key of ``data`` ending in ``suffix`` (``default`` if none)."""
    return next((value for key, value in data.items() if key.endswith(suffix)), default)
