"""The fault suite's table (fault, outcome, frames lost, cell state), printed at the end.

A fault test adds its row with the ``fault_table`` fixture; the row travels on the
test's report (``user_properties``), so the table is whole whether the tests ran in
this process or in pytest-xdist workers.
"""

from __future__ import annotations

from typing import Any

import pytest

ROWS: list[dict[str, str]] = []
COLUMNS = ("fault", "outcome", "frames lost", "cell state")
KEY = "fault_row"


@pytest.fixture()
def fault_table(request: pytest.FixtureRequest) -> Any:
    """``fault_table(fault=..., outcome=..., frames_lost=..., cell=...)`` adds a row."""

    def add(*, fault: str, outcome: str, frames_lost: object, cell: str) -> None:
        request.node.user_properties.append((KEY, [fault, outcome, str(frames_lost), cell]))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":  # (in an xdist worker these rows are its own, not shown)
        return
    for key, value in report.user_properties:
        if key == KEY:
            ROWS.append(dict(zip(COLUMNS, value, strict=True)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    widths = [max(len(c), *(len(r[c]) for r in ROWS)) for c in COLUMNS]
    tr = terminalreporter
    tr.section("fault suite")
    tr.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in ROWS:
        tr.write_line("  ".join(row[c].ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
