"""The README as a new user reads it: every command line it shows, and its scripted session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from sim_session import operando_sim

from operando.simulators.launcher import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLI = [sys.executable, "-m", "operando.control.cli"]


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def command_lines() -> list[str]:
    """Every ``operando …`` and ``python benchmarks/…`` line in code blocks and tables."""
    lines = [ln.strip() for block in code_blocks("bash") for ln in block.splitlines()]
    lines += re.findall(r"`((?:operando|python benchmarks/)[^`]*)`", README)
    found = []
    for line in lines:
        for part in re.split(r"&&|;", line):
            part = part.strip().removeprefix(".venv/bin/")
            if re.match(r"(operando [a-z]|python benchmarks/\w+\.py)", part):
                found.append(part)
    return sorted(set(found))


COMMANDS = command_lines()
NESTED = {"store": ("sync",)}  # commands with sub-commands


def test_the_readme_shows_the_commands() -> None:
    subs = {c.split()[1] for c in COMMANDS if c.startswith("operando ")}
    assert {"demo", "sim", "check", "process", "integrate"} <= subs, COMMANDS


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_line_has_help_with_its_options(line: str) -> None:
    words = line.split()
    if words[0] == "operando":  # a command's sub-command too (operando store sync)
        sub = words[2:3] if len(words) > 2 and words[2] in NESTED.get(words[1], ()) else []
        argv = [*CLI, words[1], *sub, "--help"]
    else:
        argv = [sys.executable, str(ROOT / words[1]), "--help"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage:" in res.stdout
    for option in re.findall(r"(--[a-z][a-z-]*)", line):
        assert option in res.stdout, f"{line!r}: {option} is not an option"


@pytest.fixture()
def simulated_beamline(tmp_path: Path) -> Iterator[Path]:
    """``operando sim --dir DIR`` as in the README; yields DIR once it says what to paste."""
    folder = tmp_path / "sim"
    with operando_sim(folder, "--time-factor", "60"):
        yield folder


def test_sim_prints_what_to_paste_and_never_overwrites(simulated_beamline: Path) -> None:
    folder = simulated_beamline
    env = (folder / "env.sh").read_text()
    assert "export EPICS_CA_ADDR_LIST=127.0.0.1:" in env and "OPERANDO_BEAMLINE=" in env
    toml = (folder / "beamline.toml").read_text()
    assert "ca_addr_list" in toml and "ttyPSTAT0" in toml and "detector.poni" in toml
    again = subprocess.run(
        [*CLI, "sim", "--dir", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert "Traceback" not in again.stderr


def test_the_scripted_session_runs_as_written(simulated_beamline: Path, tmp_path: Path) -> None:
    """The README's third-terminal Python, against ``operando sim`` and ``operando process``."""
    folder = simulated_beamline
    env = dict(os.environ)
    for line in (folder / "env.sh").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    info = json.loads((folder / "sim.json").read_text())
    assert env["EPICS_CA_SERVER_PORT"] == info["env"]["EPICS_CA_SERVER_PORT"]
    env["OPERANDO_DOCS"] = f"tcp://127.0.0.1:{free_port()}"
    env["OPERANDO_RESULTS"] = f"tcp://127.0.0.1:{free_port()}"
    scans = tmp_path / "scans"
    argv = ["process", "--docs", env["OPERANDO_DOCS"], "--results", env["OPERANDO_RESULTS"]]
    processor = subprocess.Popen(
        [*CLI, *argv, "--out", str(scans), "--bins", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert processor.stdout is not None
        assert processor.stdout.readline().startswith("READY")
        (script,) = [b for b in code_blocks("python") if "ProcessorLink" in b]
        res = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    finally:
        processor.terminate()
        processor.communicate(timeout=30)
    out = res.stdout
    # BestEffortCallback's tables: the detector's total counts, the stage in mm
    assert "det_total_counts" in out and "stage_x" in out
    assert re.search(r"\|\s+-0\.3000\s+\|", out), out[-3000:]
    written = Path(out.split("written:")[1].split()[0])
    assert written.parent == scans and written.name.startswith("scan0001_")
    with h5py.File(written) as f:
        assert f["entry/sinogram/data"].shape == (6, 8, 200)
        assert not f["entry/sinogram/missing"][()].any()
    for noise in ("CA repeater", "caRepeater", "Traceback"):
        assert noise not in res.stderr, res.stderr[-2000:]
