"""The web app: one page, read-only JSON/binary endpoints, and a push socket.

Every route answers GET (and HEAD) only; anything else gets 405. The websocket ``/ws``
only sends: the newest slice and sinogram of the page's view of a running scan as one
binary message (:mod:`.pages`), and a snapshot of the runs and counters whenever they
changed, at most every :data:`PUSH_PERIOD` s (every :data:`MINOR_PERIOD` s for the
counters and V/I readings alone), never queued (a slow browser gets the latest state,
not every one). Images go as little-endian float32 bytes with their shape in ``X-Shape``; the page
colours them itself, so the cursor reads the real values.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import data
from .pages import Pages, frame
from .slices import RunningSlice, SliceCache
from .state import RunView, ViewerState

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PUSH_PERIOD = 0.1  # s between pushes, at least
MINOR_PERIOD = 1.0  # s between pushes for the counters and V/I readings alone
RESCAN_PERIOD = 2.0  # s between looks at the folder for new run files
PATTERN_CACHE = 16  # summed patterns kept (several pages ask for the same one)


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Json(JSONResponse):
    """JSON with NaN and infinities as null."""

    def render(self, content: Any) -> bytes:
        return super().render(jsonable(content))


def create_app(
    state: ViewerState,
    folder: Path | None = None,
    stopping: Callable[[], bool] = lambda: False,
    slices: SliceCache | None = None,
) -> Starlette:
    """The app over ``state``; ``folder``: where finished runs' files appear;
    ``stopping()``: true once the server shuts down (the push sockets then close);
    ``slices``: the running slices published by the processor (a running scan's slice
    and sinogram come from there when at least as new as its live file)."""
    last_scan = [0.0]
    pages = Pages()  # what each open page looks at

    def rescan() -> None:
        if folder is not None and time.monotonic() - last_scan[0] >= RESCAN_PERIOD:
            last_scan[0] = time.monotonic()
            state.scan_folder(folder)

    def run_of(request: Request) -> RunView:
        uid = request.path_params["uid"]
        with state.lock:
            run = state.runs.get(uid)
        if run is None:
            raise HTTPException(404, f"no run {uid!r}")
        return run

    def source(request: Request) -> tuple[Path, bool]:
        found = run_of(request).source()
        if found is None:
            raise HTTPException(404, "the run has no file yet")
        return found

    def q_index(request: Request) -> int:
        try:
            return int(request.query_params.get("q", "0"))
        except ValueError:
            text = request.query_params.get("q")
            raise HTTPException(400, f"q index {text!r} is not an integer") from None

    def guarded(read: Any) -> Any:
        try:
            return read()
        except data.NotReadyError as exc:
            raise HTTPException(404, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def plotly_js(request: Request) -> Response:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    def api_state(request: Request) -> Response:
        rescan()
        return Json(state.snapshot())

    def api_axes(request: Request) -> Response:
        path, live = source(request)
        return Json(guarded(lambda: data.axes(path, live)))

    def running(run: RunView, live: bool, iq: int) -> RunningSlice | None:
        """The published slice at ``iq`` if it is as new as the live file (and the q
        is asked for, so that it keeps coming)."""
        if slices is None or not live:
            return None
        slices.ask(iq)
        got = slices.get(run.uid, iq)
        return got if got is not None and got.projections >= run.file_projections else None

    def api_slice(request: Request) -> Response:
        run = run_of(request)
        path, live = source(request)
        iq = q_index(request)
        version = run.data_version
        got = running(run, live, iq)
        if got is not None:
            values, projections = got.slice, got.projections
        else:
            values, projections = guarded(lambda: data.slice_at(path, live, iq))
        if live:  # new rows go to the page over its websocket from now on
            pages.looking(request.query_params.get("page"), run.uid, iq, projections)
        body, headers = data.encode(values)
        headers.update({"X-Version": str(version), "X-Projections": str(projections)})
        return Response(body, media_type="application/octet-stream", headers=headers)

    def api_map(request: Request) -> Response:
        path, live = source(request)
        name = request.query_params.get("name", "")
        run = run_of(request)
        version = run.data_version
        values, units = guarded(lambda: data.map_at(path, live, name))
        pages.looking(request.query_params.get("page"), run.uid, None, 0)  # no slices now
        body, headers = data.encode(values)
        headers.update({"X-Version": str(version), "X-Units": units})
        return Response(body, media_type="application/octet-stream", headers=headers)

    def api_sinogram(request: Request) -> Response:
        run = run_of(request)
        path, live = source(request)
        iq = q_index(request)
        got = running(run, live, iq)
        if got is not None:
            values = got.sinogram
        else:
            values = guarded(lambda: data.sinogram_at(path, live, iq))
        body, headers = data.encode(values)
        headers["X-Version"] = str(run.data_version)
        return Response(body, media_type="application/octet-stream", headers=headers)

    patterns: dict[tuple[Any, ...], list[float]] = {}  # the latest few, for every page

    def api_pattern(request: Request) -> Response:
        run = run_of(request)
        path, live = source(request)
        p = request.query_params
        try:
            rows, cols = (int(p["r0"]), int(p["r1"])), (int(p["c0"]), int(p["c1"]))
        except (KeyError, ValueError):
            raise HTTPException(400, "give the region as integers r0, r1, c0, c1") from None
        key = (run.uid, run.file_version, str(path), rows, cols)  # read from the file
        values = patterns.get(key)
        if values is None:
            values = guarded(lambda: data.pattern(path, live, rows, cols)).tolist()
            patterns[key] = values
            while len(patterns) > PATTERN_CACHE:
                patterns.pop(next(iter(patterns)))
        return Json({"mean": values})

    def api_trace(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            raise HTTPException(400, "since must be an integer") from None
        return Json(state.trace_since(request.path_params["experiment"], since))

    async def push(websocket: WebSocket) -> None:
        await websocket.accept()
        page = websocket.query_params.get("page")
        sent, sent_major, sent_at = -1, -1, 0.0
        try:
            while not stopping():
                new = pages.due(page, slices) if page and slices is not None else None
                if new is not None:  # the page's slice, before the state that says it came
                    await websocket.send_bytes(frame(new))
                major = state.major
                minor_due = time.monotonic() - sent_at >= MINOR_PERIOD
                if major != sent_major or (state.version != sent and minor_due):
                    snap = await asyncio.to_thread(state.snapshot)
                    sent, sent_major, sent_at = snap["version"], major, time.monotonic()
                    await websocket.send_json(jsonable(snap))
                await asyncio.sleep(PUSH_PERIOD)
            await websocket.close(1001)  # going away: the server stops
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            if page:
                pages.close(page)

    get = ["GET"]
    return Starlette(
        routes=[
            Route("/", index, methods=get),
            Route("/vendor/plotly.min.js", plotly_js, methods=get),
            Route("/api/state", api_state, methods=get),
            Route("/api/run/{uid}/axes", api_axes, methods=get),
            Route("/api/run/{uid}/slice", api_slice, methods=get),
            Route("/api/run/{uid}/map", api_map, methods=get),
            Route("/api/run/{uid}/sinogram", api_sinogram, methods=get),
            Route("/api/run/{uid}/pattern", api_pattern, methods=get),
            Route("/api/trace/{experiment}", api_trace, methods=get),
            WebSocketRoute("/ws", push),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
