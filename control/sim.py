"""``operando sim``: the simulated beamline for scripting, with what to paste to use it.

Starts the CA repeater, the IOC and the serial potentiostat (the same processes as the
demo), and writes into its folder:

- ``detector.poni``, ``saxs.poni``: the simulated detector's pyFAI geometry at the WAXS
  and the SAXS distance (its distance motor ``dist``);
- ``beamline.toml``: a beamline config for ``operando check`` and
  :func:`operando.control.beamline.build`;
- ``env.sh``: the Channel Access environment (``source`` it in another shell);
- ``sim.json``: every address, for programs.

Nothing already in the folder is overwritten.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import tempfile
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger("operando.sim")
FILES = ("detector.poni", "saxs.poni", "beamline.toml", "env.sh", "sim.json")


def beamline_toml(prefix: str, port: int, pty: str, poni: Path) -> str:
    """A beamline config for the simulated beamline (keys as in :mod:`.config`)."""
    return (
        "# written by operando sim; every key is described in operando/control/config.py\n"
        "[epics]\n"
        f'prefix = "{prefix}"\n'
        f'ca_addr_list = "127.0.0.1:{port}"\n'
        "connection_timeout = 5.0\n"
        'transmission = "diode_t"    # the transmitted-beam diode behind the sample\n'
        'transmission_counter = "diode_t:"  # the same diode counted point by point\n'
        'centring = "cx,cy"          # the centring translations on the rotation\n'
        'camera = "ffcam:"           # the full-field imaging camera\n'
        'fluorescence = "sdd:"       # the energy-dispersive (XRF) detector\n'
        'detector_distance = "dist"  # the diffraction detector\'s distance motor (mm)\n\n'
        "[potentiostat]\n"
        f'url = "{pty}"\n'
        "sample_interval = 1.0\n\n"
        "[detector]\n"
        f'poni = "{poni}"\n'
        f'saxs_poni = "{poni.parent / "saxs.poni"}"\n'
        "exposure = 0.01\n"
    )


def env_lines(env: dict[str, str], config: Path) -> list[str]:
    return [*(f"export {k}={v}" for k, v in env.items()), f"export OPERANDO_BEAMLINE={config}"]


def mount_offset(text: str) -> tuple[float, float]:
    """``--mount-offset U,V``: mm, each within ±1."""
    try:
        u, v = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need U,V in mm, e.g. 0.3,0") from None
    if not (abs(u) <= 1 and abs(v) <= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: each of U, V must be within ±1 mm")
    return u, v


def run_sim(
    folder: Path | None,
    prefix: str,
    port: int,
    phantom: Path | None,
    time_factor: float,
    artefacts: str = "",
    mount_offset: tuple[float, float] | None = None,
) -> int:
    """Run the simulated beamline until Ctrl-C or SIGTERM; always stop every process.
    ``mount_offset``: the sample glued (u, v) mm off the centring stage's middle."""
    from ..simulators import launcher
    from ..simulators.artefacts import ArtefactError, Artefacts

    if not time_factor > 0:
        raise ConfigError(f"--time-factor {time_factor:g}: must be > 0")
    try:
        artefacts = str(Artefacts.parse(artefacts))
    except ArtefactError as exc:
        raise ConfigError(f"--artefacts: {exc}") from None
    folder = folder or Path(tempfile.mkdtemp(prefix="operando-sim-"))
    folder.mkdir(parents=True, exist_ok=True)
    taken = [name for name in FILES if (folder / name).exists()]
    if taken:
        raise ConfigError(
            f"--dir {folder} already holds {', '.join(taken)}; operando sim never overwrites "
            "a file: choose another folder"
        )
    port = port or launcher.free_port()
    env = launcher.ca_client_env(port)

    procs: list[launcher.SimProcess] = []
    try:
        procs.append(launcher.start_repeater(port))
        poni = folder / "detector.poni"
        ioc = launcher.start_ioc(
            prefix, port, phantom, poni, artefacts=artefacts, mount_offset=mount_offset,
            saxs_poni=folder / "saxs.poni",
        )  # fmt: skip
        procs.append(ioc)
        pot = launcher.start_potentiostat(time_factor, 0.05, 0.98, ioc=(prefix, port))
        procs.append(pot)
        config = folder / "beamline.toml"
        config.write_text(beamline_toml(prefix, port, pot.info["port"], poni))
        lines = env_lines(env, config)
        (folder / "env.sh").write_text("\n".join(lines) + "\n")
        info = {"ioc": ioc.info, "potentiostat": pot.info, "env": env, "config": str(config)}
        (folder / "sim.json").write_text(json.dumps(info, indent=2) + "\n")
        print(
            "operando sim: the simulated beamline is running (Ctrl-C stops it)\n"
            f"  IOC           PV prefix {prefix}, Channel Access on 127.0.0.1:{port} "
            f"(CA repeater on UDP {port + 1})\n"
            f"  detector      {prefix}det:cam:, frames on {ioc.info['stream']} (Stream V2)\n"
            f"  potentiostat  {pot.info['port']} (MethodSCRIPT, cell time x{time_factor:g})\n"
            f"  folder        {folder} ({', '.join(FILES)})\n"
            f"  artefacts     {artefacts or 'none (an ideal sample and beam)'}\n"
            f"  sample        mounted {mount_offset or (0, 0)} mm off the centring stage's "
            "middle\n\n"
            "In another terminal, paste:\n"
            f"  source {folder / 'env.sh'}\n"
            f"  operando check --config {config}\n"
            "then, in Python: operando.control.beamline.build(load_config(OPERANDO_BEAMLINE))"
            " (see README, 'Scripting a session')",
            flush=True,
        )
        signal.pause()
    except KeyboardInterrupt:
        log.info("operando sim: stopping the simulators")
    finally:
        for proc in reversed(procs):
            proc.stop()
    return 0
