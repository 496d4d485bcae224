"""``operando sim`` as a user starts it, for the tests that script against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_demo_signals import _wait_gone, sim_processes, tagged

CLI = [sys.executable, "-m", "operando.control.cli"]


@contextmanager
def operando_sim(folder: Path, *options: str) -> Iterator[dict[str, str]]:
    """``operando sim --dir FOLDER OPTIONS…``; yields, once it says what to paste, the
    environment with its ``env.sh`` applied. Stopped with SIGTERM after, which must stop
    every simulator and exit cleanly."""
    tag, env = tagged()
    proc = subprocess.Popen(
        [*CLI, "sim", "--dir", str(folder), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("In another terminal"):
            break
    assert (folder / "env.sh").is_file(), "".join(seen)
    for line in (folder / "env.sh").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    try:
        yield env
        assert sim_processes(tag)  # IOC, potentiostat ...
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not _wait_gone(tag)
