"""The contract between a launcher and the child processes it starts.

- Lines on the child's stdout: ``READY {json}`` once the process serves (its
  addresses); simulators add status lines such as ``STATE {json}``, ``UNPLUGGED …`` and
  ``REPLUGGED`` for tests. These lines are a machine interface, not messages for a
  person: people read the launcher's logging.
- Lifetime: a child started with :func:`die_with_parent` as its ``preexec_fn`` gets
  SIGTERM when its launcher dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``). Start
  children from a thread that lives as long as the launcher: the signal follows the
  thread that forked.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any


def announce(tag: str, payload: dict[str, Any] | str = "") -> None:
    """Write one ``TAG payload`` line to stdout and flush it."""
    text = json.dumps(payload) if isinstance(payload, dict) else payload
    sys.stdout.write(f"{tag} {text}".rstrip() + "\n")
    sys.stdout.flush()


# looked up once in the launcher, so the child runs no import between fork and exec
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a child before exec: SIGTERM when process ``parent`` dies (Linux only).

    The child also gets every signal unblocked: a thread that blocked some (to leave
    them to its main thread) would otherwise pass its mask on to the child.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call: do not outlive it
        os.kill(os.getpid(), signal.SIGTERM)
