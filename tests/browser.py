"""Driving the live display in the system's Chromium (Debian's ``chromium`` package)
with playwright; every wait is on the page's own state, never a fixed time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

WAIT_MS = 120_000  # generous: the page waits on the scan, which a loaded machine slows


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("no chromium on PATH: apt-get install chromium (.ci/run does)")
    return path


@contextmanager
def viewing(path: Path) -> Iterator[str]:
    """``operando view PATH`` on any free port, as a user starts it; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "operando.control.cli", "view", str(path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def open_page(b: Browser, url: str, errors: list[str]) -> Page:
    page = b.new_page(viewport={"width": 1500, "height": 1100})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page


def attr(page: Page, testid: str, name: str) -> str | None:
    return page.get_attribute(f"[data-testid={testid}]", f"data-{name}")


def wait_attr(page: Page, testid: str, name: str, test: str) -> None:
    """Wait until ``Number(el.dataset[name]) <test>`` holds, e.g. ``"> 3"``."""
    page.wait_for_function(
        f"(() => {{ const el = document.querySelector('[data-testid={testid}]');"
        f" return el && el.dataset.{name} !== undefined && Number(el.dataset.{name}) {test}; }})()",
        timeout=WAIT_MS,
    )


def move_q(page: Page, steps: int) -> str:
    """Press the q slider's arrow key ``steps`` times; wait for the slice at the new q."""
    control = page.locator("[data-testid=q-control]")
    control.focus()
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
    value = control.input_value()
    wait_attr(page, "slice", "q", f"== {value}")
    return value


def watch_live(url: str, shots: Path) -> dict[str, Any]:
    """During a running scan: the slice changing as projections arrive, the q control,
    the V/I trace growing, console errors; screenshots under ``shots``."""
    seen: dict[str, Any] = {"errors": [], "versions": [], "slice_shots": []}
    with browser() as b:
        page = open_page(b, url, seen["errors"])
        wait_attr(page, "slice", "renders", ">= 1")
        wait_attr(page, "vi-plot", "points", "> 0")
        seen["vi_points"] = [int(attr(page, "vi-plot", "points") or 0)]
        # the second scan, after the charge (the display follows the newest run; watched
        # in one run, as the first may end while the page opens)
        second = page.wait_for_selector("[data-testid=runs] li:nth-child(2)", timeout=WAIT_MS)
        uid = second.get_attribute("data-uid") if second is not None else ""
        page.wait_for_function(in_run(uid), timeout=WAIT_MS)
        for _ in range(4):  # as projections arrive
            done = int(attr(page, "slice", "projections") or 0)
            page.wait_for_function(in_run(uid, f"Number(d.projections) > {done}"), timeout=WAIT_MS)
            seen["versions"].append(int(attr(page, "slice", "projections") or 0))
            seen["slice_shots"].append(page.locator("[data-testid=slice]").screenshot())
        wait_attr(page, "vi-plot", "points", f"> {seen['vi_points'][0]}")
        seen["vi_points"].append(int(attr(page, "vi-plot", "points") or 0))
        before = page.locator("[data-testid=slice]").screenshot()
        seen["q_before"] = attr(page, "slice", "q")
        seen["q_after"] = move_q(page, 25)
        seen["q_changed_image"] = page.locator("[data-testid=slice]").screenshot() != before
        seen["progress"] = page.inner_text("[data-testid=progress]")
        # the picture for the README: the second scan half way
        move_q(page, -25)
        page.wait_for_function(in_run(uid, "Number(d.projections) >= 20"), timeout=WAIT_MS)
        page.screenshot(path=str(shots / "live_view.png"))
    return seen


def in_run(uid: str, condition: str = "true") -> str:
    """A page function: the slice panel shows run ``uid`` and its dataset ``d`` meets
    ``condition``."""
    return (
        "(() => { const d = document.querySelector('[data-testid=slice]').dataset;"
        f" return d.run === '{uid}' && ({condition}); }})()"
    )


def each_run(page: Page, shown: str = "") -> list[bytes]:
    """Click each run in the list in turn; the slice panel's screenshot once it is drawn
    for that run (and ``shown``, a selector, is there)."""
    items = page.locator("[data-testid=runs] li")
    shots = []
    for k in range(items.count()):
        renders = int(attr(page, "slice", "renders") or 0)
        items.nth(k).click()
        wait_attr(page, "slice", "renders", f"> {renders}")
        page.wait_for_selector(f"[data-testid=runs] li:nth-child({k + 1}).selected")
        if shown:
            page.wait_for_selector(shown)
        shots.append(page.locator("[data-testid=slice]").screenshot())
    return shots


def browse_folder(url: str, shots: Path) -> dict[str, Any]:
    """A finished demo folder: the runs listed, switching runs and q channels."""
    seen: dict[str, Any] = {"errors": []}
    with browser() as b:
        page = open_page(b, url, seen["errors"])
        wait_attr(page, "slice", "renders", ">= 1")
        items = page.locator("[data-testid=runs] li")
        seen["runs"] = [items.nth(k).get_attribute("title") for k in range(items.count())]
        shots_by_run = each_run(page)
        seen["runs_differ"] = len(set(shots_by_run)) == len(shots_by_run)
        before = page.locator("[data-testid=slice]").screenshot()
        seen["q_after"] = move_q(page, -40)
        seen["q_changed_image"] = page.locator("[data-testid=slice]").screenshot() != before
        wait_attr(page, "sinogram", "q", f"== {seen['q_after']}")
        seen["sinogram_q"] = attr(page, "sinogram", "q")
        page.screenshot(path=str(shots / "folder_view.png"))
        # the maps of the run's file: the LiMn2O4 lattice map of each run (#14)
        renders = int(attr(page, "slice", "renders") or 0)
        page.select_option("[data-testid=map-control]", "LiMn2O4/lattice_a")
        wait_attr(page, "slice", "renders", f"> {renders}")
        page.wait_for_selector("[data-testid=slice][data-map='LiMn2O4/lattice_a']")
        seen["map_title"] = page.locator("[data-testid=slice] .title").text_content()
        seen["map_options"] = page.locator("[data-testid=map-control] option").all_inner_texts()
        maps_by_run = each_run(page, "[data-testid=slice][data-map='LiMn2O4/lattice_a']")
        seen["maps_differ"] = len(set(maps_by_run)) == len(maps_by_run)
        page.screenshot(path=str(shots / "maps_view.png"))
    return seen
