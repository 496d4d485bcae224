"""Serial client for MethodSCRIPT potentiostats (pyserial, any ``serial_for_url`` URL).

One reader thread parses every line the instrument sends; a script is represented by
a :class:`ScriptRun` whose ``finished`` event is set by the script's final empty line
(or by an error). Data packages are stamped with the host clock on arrival (the same
clock as detector frames and bluesky events) and handed to a callback.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from ..protocols import methodscript as ms


class PotentiostatError(RuntimeError):
    """The potentiostat refused a command, answered nonsense, or is not reachable."""


class ScriptNotAcceptedError(PotentiostatError):
    """A script got no answer (neither accepted nor refused) within the timeout."""


@dataclass
class ScriptRun:
    """What happened to one script: packages, loop markers, error, abort."""

    finished: threading.Event = field(default_factory=threading.Event)
    accepted: threading.Event = field(default_factory=threading.Event)
    packages: int = 0
    last: ms.DataPackage | None = None
    error: str | None = None
    aborted: bool = False
    lost: bool = False  # the serial link went away while it ran


class MethodScriptClient:
    """Talks MethodSCRIPT over a serial line."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 230400,
        timeout: float = 3.0,
        on_package: Callable[[ms.DataPackage, float], None] | None = None,
        on_link: Callable[[bool, float], None] | None = None,
        reconnect_interval: float = 0.25,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout = timeout
        self.on_package = on_package
        self.on_link = on_link
        self.reconnect_interval = reconnect_interval
        self.connected = threading.Event()
        try:
            self.port = self._open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PotentiostatError(f"cannot open potentiostat serial port {url!r}: {exc}") from exc
        self.connected.set()
        self._replies: queue.Queue[str] = queue.Queue()
        self._run: ScriptRun | None = None
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self.malformed = 0
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="methodscript-rx")
        self._reader.start()

    def _open(self) -> serial.SerialBase:
        # a local port is locked: a second client would steal the instrument's replies
        local = "://" not in self.url
        return serial.serial_for_url(
            self.url,
            baudrate=self.baudrate,
            timeout=0.1,
            **({"exclusive": True} if local else {}),
        )

    # -- lines ---------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        with self._write_lock:
            if not self.connected.is_set():
                raise PotentiostatError(
                    f"potentiostat port {self.url!r} is disconnected (cable unplugged?)"
                )
            try:
                self.port.write(text.encode("ascii"))
                self.port.flush()
            except (serial.SerialException, OSError) as exc:
                raise PotentiostatError(
                    f"potentiostat port {self.url!r} write failed: {exc}"
                ) from exc

    def _read_loop(self) -> None:
        buf = b""
        while not self._closed.is_set():
            try:
                chunk = self.port.read(4096)
            except (serial.SerialException, OSError, TypeError):
                if self._closed.is_set():
                    return
                self._link_lost()
                buf = b""
                if not self._reconnect():
                    return
                continue
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self.handle_line(raw.decode("ascii", errors="replace").rstrip("\r"), time.time())

    def _link_lost(self) -> None:
        """The port went away: fail the running script, tell the owner, close our end."""
        self.connected.clear()
        if self.on_link is not None:  # first, so whoever sees the script end sees the loss
            self.on_link(False, time.time())
        run = self._run
        if run is not None and not run.finished.is_set():
            run.error = f"serial link to {self.url!r} lost"
            run.lost = True
            run.accepted.set()
            run.finished.set()
        with self._write_lock:
            try:
                self.port.close()
            except (serial.SerialException, OSError):
                pass

    def _reconnect(self) -> bool:
        """Reopen the port until it comes back (or the client closes); True if it did."""
        while not self._closed.wait(self.reconnect_interval):
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError):
                continue
            with self._write_lock:
                self.port = port
            self.connected.set()
            if self.on_link is not None:
                self.on_link(True, time.time())
            return True
        return False

    def handle_line(self, line: str, stamp: float) -> None:
        """Dispatch one received line (public so the parser can be tested on its own)."""
        run = self._run
        if line.startswith("P"):
            try:
                pkg = ms.parse_package(line)
            except ms.MethodScriptError:
                self.malformed += 1
                return
            if run is not None:
                run.packages += 1
                run.last = pkg
            if self.on_package is not None:
                self.on_package(pkg, stamp)
            return
        err = None
        if line.startswith("!"):
            try:
                err = ms.parse_error(line)
            except ms.MethodScriptError:
                err = (0xFFFF, line)
        if run is not None and not run.finished.is_set():
            if err is not None:
                run.error = f"error 0x{err[0]:04X}: {err[1]}"
                run.accepted.set()
                return
            if line == "e":
                run.accepted.set()
            elif line == "Z":
                run.aborted = True
            elif line == "" and run.accepted.is_set():
                run.finished.set()
            return
        if line:
            self._replies.put(line)

    # -- commands ------------------------------------------------------------------------
    def query(self, letter: str) -> str:
        """Send a one-letter command and return its reply (without the echoed letter)."""
        while not self._replies.empty():
            self._replies.get_nowait()
        self._write(letter + "\n")
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PotentiostatError(
                    f"potentiostat on {self.url!r} did not answer {letter!r} in {self.timeout} s"
                )
            try:
                line = self._replies.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith("!"):
                raise PotentiostatError(f"potentiostat refused {letter!r}: {line}")
            if line.startswith(letter):
                return line[1:]

    def identify(self) -> str:
        return self.query("t")

    @property
    def busy(self) -> bool:
        return self._run is not None and not self._run.finished.is_set()

    def run_script(self, script: str) -> ScriptRun:
        """Send a script; returns once the instrument accepted (or refused) it."""
        if self.busy:
            raise PotentiostatError(
                "a script is already running on the potentiostat; abort it first"
            )
        run = ScriptRun()
        self._run = run
        self._write(script)
        if not run.accepted.wait(self.timeout):
            raise ScriptNotAcceptedError(
                f"potentiostat on {self.url!r} did not accept the script in {self.timeout} s"
            )
        if run.error:
            run.finished.set()
            raise PotentiostatError(f"potentiostat refused the script: {run.error}")
        return run

    def abort(self, wait: float | None = None) -> None:
        """Abort the running script (``Z``); the instrument switches the cell off."""
        run = self._run
        if run is None or run.finished.is_set() or not self.connected.is_set():
            return
        self._write("Z\n")
        if not run.finished.wait(self.timeout if wait is None else wait):
            raise PotentiostatError(f"potentiostat on {self.url!r} did not confirm the abort")

    def close(self) -> None:
        self._closed.set()
        try:
            self.port.close()
        finally:
            self._reader.join(timeout=1)
