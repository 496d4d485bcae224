"""Channel Access set-up for this process, before libca starts (ophyd starts it lazily).

libca registers with a CA repeater on ``EPICS_CA_REPEATER_PORT`` (5065 by default); when
none answers it tries to spawn ``caRepeater`` and, failing that, prints "unable to
contact CA repeater after 50 tries" at random moments. :func:`ensure_repeater` starts
caproto's repeater there first when the port is free, as libca itself would.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

log = logging.getLogger("operando.ca")


def repeater_port() -> int:
    return int(os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))


def repeater_running(port: int) -> bool:
    """True when something already holds the repeater's UDP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def ensure_repeater() -> None:
    """Start caproto's CA repeater on ``EPICS_CA_REPEATER_PORT`` unless one runs there.

    Like libca's own ``caRepeater`` it runs on in its own session, shared by every CA
    client of this host, and binds loopback only.
    """
    port = repeater_port()
    if repeater_running(port):
        return
    env = {**os.environ, "EPICS_CA_REPEATER_PORT": str(port)}
    # (named by module: the repeater prints READY once its port is bound, then nothing)
    proc = subprocess.Popen(
        [sys.executable, "-m", "operando.simulators.repeater"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    with proc.stdout:
        line = proc.stdout.readline()  # returns at READY, or at EOF if it could not bind
    if line.startswith("READY"):
        log.info("started a CA repeater on UDP port %d (pid %d)", port, proc.pid)


def route_libca_messages() -> None:
    """Send libca's own printf output (repeater warnings, …) to our debug log.

    Without this, libca prints "unable to contact CA repeater after 50 tries" and the
    like straight to the terminal when a busy host delays the repeater's reply. It
    starts this process's CA context: call it after the CA environment is set.
    """
    import epics.ca

    def to_log(*parts: str) -> None:
        log.debug("libca: %s", " ".join(p.strip() for p in parts if p.strip()))

    epics.ca.replace_printf_handler(to_log)
