"""A Channel Access repeater on loopback (forwards IOC beacons to local clients).

The port is ``EPICS_CA_REPEATER_PORT``; the launcher gives the IOC and the clients the
same one. Run ``python -m operando.simulators.repeater``.
"""

from __future__ import annotations

import os

from caproto.sync.repeater import _run_repeater, check_for_running_repeater

from ..protocols.child_process import announce


def main() -> None:
    port = int(os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))
    addr = ("127.0.0.1", port)
    sock = check_for_running_repeater(addr)  # bound before READY: clients never race it
    announce("READY", {"repeater_port": port})
    try:
        _run_repeater(sock, addr)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
