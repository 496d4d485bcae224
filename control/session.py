"""The RunEngine and its subscriptions: documents to the live processor, progress to the user."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from bluesky import RunEngine
from bluesky.callbacks.zmq import Publisher

from ..devices.connection import IocConnection, ioc_suspender
from ..protocols.jsonable import jsonable
from ..protocols.streams import Report
from .errors import ConfigError
from .progress import ScanProgress
from .spool import DocumentSpool


def serialize(doc: dict[str, Any]) -> bytes:
    """Documents travel as JSON (never pickle)."""
    return json.dumps(doc, default=jsonable).encode()


def connect_publisher(
    docs_address: str,
    results: zmq.Socket,
    timeout: float = 10.0,
    others: list[dict[str, Any]] | None = None,
) -> Publisher:
    """A bluesky 0MQ ``Publisher`` to the processor, returned once messages get through.

    PUB drops what it sends before the connection is up, so probes are sent until the
    processor acknowledges one on the results socket. Other reports read meanwhile are
    appended to ``others``.
    """
    pub = Publisher(docs_address, serializer=serialize)
    # bounded linger: documents for a processor that is gone must never block exit
    pub._socket.setsockopt(zmq.LINGER, 2000)
    try:
        read = flush(pub, results, timeout)
        if others is not None:
            others.extend(read)
    except ConfigError:
        pub.close()
        raise
    return pub


def flush(pub: Publisher, results: zmq.Socket, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Probe until the processor acknowledges: every document sent before is handled.

    Returns the other reports that arrived meanwhile (e.g. ``written``).
    """
    token = uuid.uuid4().hex
    others: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub._socket.send(b" probe " + token.encode())
        while results.poll(50):
            msg: dict[str, Any] = results.recv_json()  # type: ignore[assignment]
            if msg.get("event") == Report.PROBE and msg.get("token") == token:
                return others
            if msg.get("event") != Report.PROBE:
                others.append(msg)
    raise ConfigError(f"live processor at {pub.address} did not answer within {timeout:g} s")


def make_run_engine(
    publisher: Callable[[str, dict[str, Any]], Any] | None,
    progress: bool = True,
    spool: DocumentSpool | Path | None = None,
    ioc: tuple[IocConnection, float] | None = None,
) -> RunEngine:
    """A RunEngine with the document spool, the publisher and scan progress subscribed.

    ``spool``: what keeps every document (:mod:`.spool`; a folder or the spool itself);
    subscribed first, so a document is on disk before anything else sees it. ``ioc``:
    (the beamline's IOC connection, s to wait for it): a lost IOC suspends the plan for
    that long, then fails it (:func:`..devices.connection.ioc_suspender`).
    """
    RE = RunEngine({}, call_returns_result=True)
    if ioc is not None:
        RE.install_suspender(ioc_suspender(*ioc))
    if spool is not None:
        RE.subscribe(spool if isinstance(spool, DocumentSpool) else DocumentSpool(spool))
    if publisher is not None:
        RE.subscribe(publisher)
    if progress:
        RE.subscribe(ScanProgress())
    return RE


class ProcessorLink:
    """A bluesky callback: documents to a running live processor, its reports back.

    ``docs``: the address the processor bound with ``--docs``; ``results``: the address
    it PUSHes reports to (``--results``), bound here. Use it with ``RE.subscribe(link)``;
    :meth:`written` waits until every document sent so far is handled and returns the
    files the processor has written since.
    """

    def __init__(self, docs: str, results: str, timeout: float = 10.0) -> None:
        self._ctx = zmq.Context()
        self.results = self._ctx.socket(zmq.PULL)
        self.results.bind(results)
        self.publisher = connect_publisher(docs, self.results, timeout)
        self._reports: list[dict[str, Any]] = []

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.publisher(name, doc)

    def written(self, n: int = 1, timeout: float = 60.0) -> list[str]:
        """Paths of the next ``n`` files the processor writes (waits up to ``timeout`` s)."""
        self._reports += flush(self.publisher, self.results)
        paths: list[str] = []
        deadline = time.monotonic() + timeout
        while len(paths) < n:
            while self._reports:
                msg = self._reports.pop(0)
                if msg.get("event") == Report.WRITTEN:
                    paths.append(str(msg["path"]))
                elif msg.get("event") == Report.ERROR:
                    raise ConfigError(f"live processor: {msg.get('error')}")
            if len(paths) >= n:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigError(f"live processor wrote no file within {timeout:g} s")
            if self.results.poll(int(min(left, 0.5) * 1000) + 1):
                self._reports.append(self.results.recv_json())  # type: ignore[arg-type]
        return paths

    def close(self) -> None:
        self.publisher.close()
        self._ctx.destroy(linger=0)
