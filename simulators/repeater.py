"""A Channel Access repeater on loopback (forwards IOC beacons to local clients).

The port is ``EPICS_CA_REPEATER_PORT``; the launcher gives the IOC and the clients the
same one. Run ``python -m operando.simulators.repeater``.
"""

from __future__ import annotations

import json
import os

from caproto.sync.repeater import run


def main() -> None:
    port = int(os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))
    print("READY " + json.dumps({"repeater_port": port}), flush=True)
    run(host="127.0.0.1")


if __name__ == "__main__":
    main()
