"""Wrong configuration gives one line naming the problem and a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
