"""The line protocol on a child process's stdout that its launcher reads.

``READY {json}`` once the process serves (its addresses); simulators add status lines
such as ``STATE {json}``, ``UNPLUGGED …`` and ``REPLUGGED`` for tests. These lines are a
machine interface, not messages for a person: people read the launcher's logging.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def announce(tag: str, payload: dict[str, Any] | str = "") -> None:
    """Write one ``TAG payload`` line to stdout and flush it."""
    text = json.dumps(payload) if isinstance(payload, dict) else payload
    sys.stdout.write(f"{tag} {text}".rstrip() + "\n")
    sys.stdout.flush()
