"""Wrong configuration gives one line naming the problem and a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run_check(tmp_path: Path, toml: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "beamline.toml"
    cfg.write_text(toml)
    return subprocess.run(
        [sys.executable, "-m", "operando.control.cli", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("operando: error:")]
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0]


def test_unknown_pv_prefix(tmp_path: Path, ioc, ca_port: int) -> None:
    res = run_check(
        tmp_path,
        f'[epics]\nprefix = "NOPE:"\nconnection_timeout = 1.0\n'
        f'ca_addr_list = "127.0.0.1:{ca_port}"\n',
    )
    assert_one_line_error(res, "'NOPE:'", "did not connect")


def test_missing_serial_port(tmp_path: Path, ioc, ca_port: int) -> None:
    res = run_check(
        tmp_path,
        f'[epics]\nprefix = "{ioc.info["prefix"]}"\nca_addr_list = "127.0.0.1:{ca_port}"\n'
        '[potentiostat]\nurl = "/dev/ttyNOPE0"\n',
    )
    assert_one_line_error(res, "/dev/ttyNOPE0")


def test_unreadable_poni(tmp_path: Path) -> None:
    bad = tmp_path / "broken.poni"
    bad.write_text("this is not a poni file\n")
    res = run_check(tmp_path, f'[detector]\nponi = "{bad}"\n')
    assert_one_line_error(res, str(bad))
    res = run_check(tmp_path, '[detector]\nponi = "/no/such/file.poni"\n')
    assert_one_line_error(res, "/no/such/file.poni", "does not exist")


def test_unknown_config_key(tmp_path: Path) -> None:
    res = run_check(tmp_path, '[epics]\nprefx = "X:"\n')
    assert_one_line_error(res, "[epics]", "prefx")


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[epics]\nconnection_timeout = "fast"\n', ["connection_timeout", "'fast'", "a number"]),
        ("[processing]\nbins = 2.5\n", ["bins", "2.5", "whole number"]),
        ("[detector]\nexposure = 1000.0\n", ["exposure", "1000", "[0.0001, 100]"]),
        ("[potentiostat]\nv_min = 4.5\nv_max = 4.0\n", ["v_min", "4.5", "v_max"]),
        ("[epics]\nprefix = 3\n", ["prefix", "3", "a string"]),
        ("epics = 1\n", ["[epics]", "table"]),
    ],
)
def test_bad_config_types_give_one_line_errors(tmp_path: Path, toml: str, needles) -> None:
    res = run_check(tmp_path, toml)
    assert_one_line_error(res, *needles)


def test_unknown_poni_detector_is_one_short_line(tmp_path: Path) -> None:
    bad = tmp_path / "odd.poni"
    bad.write_text("Detector: NoSuchDetector9000\nDistance: 0.1\nWavelength: 1e-10\n")
    res = run_check(tmp_path, f'[detector]\nponi = "{bad}"\n')
    assert_one_line_error(res, str(bad))
    assert len(res.stderr) < 500, res.stderr


def test_only_a_prefix_names_where_to_look(tmp_path: Path, ioc) -> None:
    """No ca_addr_list: the hint names it and the port searched; PV names stay whole."""
    res = run_check(tmp_path, '[epics]\nprefix = "NOPE:"\nconnection_timeout = 1.0\n')
    assert_one_line_error(res, "'NOPE:'", "ca_addr_list", "port")
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("operando: error:"))
    listed = line.split("(", 1)[1].split(")", 1)[0]
    names = [n.strip() for n in listed.replace(" and ", ",").split(",") if n.strip()]
    assert names and all(n.startswith("NOPE:") or n.endswith("more") for n in names), listed


@pytest.mark.parametrize(
    ("command", "needles"),
    [
        (["demo", "--artefacts", "dust"], ["'dust' is unknown", "axis_offset"]),
        (["demo", "--artefacts", "zingers"], ["needs a value"]),
        (
            ["demo", "--mode", "fly", "--artefacts", "absorption"],
            ["read at every point", "use --mode step"],
        ),
        (["sim", "--artefacts", "axis_offset=99"], ["within [-5, 5] mm"]),
    ],
)
def test_bad_artefacts_are_one_line_errors(tmp_path: Path, command, needles) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "operando.control.cli",
            *command,
            "--out" if command[0] == "demo" else "--dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(res, *needles)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_unknown_correction_stops_the_processor_with_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "operando.control.cli",
            "process",
            "--out",
            str(tmp_path),
            "--corrections",
            "normalise,ring_of_fire",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "correction 'ring_of_fire' does not exist" in res.stderr
    assert "rotation_centre" in res.stderr
