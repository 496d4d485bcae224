"""The fault suite: each test injects one fault and adds a row to the table printed at
the end (fault, outcome, frames lost, cell state)."""

from __future__ import annotations

from typing import Any

import pytest

ROWS: list[dict[str, str]] = []
COLUMNS = ("fault", "outcome", "frames lost", "cell state")


@pytest.fixture()
def fault_table() -> Any:
    """``fault_table(fault=..., outcome=..., frames_lost=..., cell=...)`` adds a row."""

    def add(*, fault: str, outcome: str, frames_lost: object, cell: str) -> None:
        ROWS.append(dict(zip(COLUMNS, (fault, outcome, str(frames_lost), cell), strict=True)))

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    widths = [max(len(c), *(len(r[c]) for r in ROWS)) for c in COLUMNS]
    tr = terminalreporter
    tr.section("fault suite")
    tr.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in ROWS:
        tr.write_line("  ".join(row[c].ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
