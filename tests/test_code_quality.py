"""The house rules: ruff (lint + format) and mypy are clean; imports point one way.

The import contracts (DESIGN.md: control -> plans -> devices -> protocols; simulators
and live_processing read only protocols) are import-linter's, in pyproject.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "."],
        ["lint-imports"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-contracts"],
)
def test_tool_is_clean(cmd: list[str]) -> None:
    exe = shutil.which(cmd[0], path=str(Path(sys.executable).parent)) or shutil.which(cmd[0])
    assert exe, f"{cmd[0]} is not installed (pip install '.[test]')"
    res = subprocess.run([exe, *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_modules_stay_small_and_every_package_is_installed() -> None:
    """No module over 400 lines; every folder with an ``__init__.py`` is a package that
    pyproject installs (a sub-package left out would be missing from a clean install)."""
    import tomllib

    rooms = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() or d.name == "tests"]
    sources = [*ROOT.glob("*.py"), *(p for d in rooms for p in d.rglob("*.py"))]
    long = {
        str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
    packages = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    inits = [ROOT / "__init__.py", *(p for d in rooms for p in d.rglob("__init__.py"))]
    found = {".".join(("operando", *p.parent.relative_to(ROOT).parts)) for p in inits}
    assert found == packages, found ^ packages
