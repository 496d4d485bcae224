"""PalmSens MethodSCRIPT framing: literals, data packages, errors and the scripts we send.

Wire facts used here (EmStat family, MethodSCRIPT v1.x):

- Lines are ASCII, terminated by ``\\n``. The device echoes each command's letter.
- ``t`` returns the firmware version, ``i`` the serial number; ``Z`` aborts a script.
- A script starts with the line ``e`` and ends with an empty line. The device answers
  ``e``, then ``M....`` when a measurement loop starts, ``P...`` data packages, ``*`` at
  each loop's end, and an empty line when the script has finished.
- Errors are ``!hhhh`` (four hex digits) optionally followed by text.
- A data package is ``P`` + ``;``-separated variables: a two-letter type (``ab`` WE
  potential, ``ba`` WE current, ``eb`` time, ``da`` set potential), eight characters of
  value (seven hex digits offset by 2**27, then an SI prefix) and optional ``,``-separated
  metadata (``1h`` status flags, ``2hh`` current range).
- Script literals are integers with an SI prefix, e.g. ``4200m`` or ``8u``, or plain
  integers with an ``i`` suffix (``5i``, ``0x2i``). Scripts may nest ``loop`` and ``if``
  blocks, use ``var``/``store_var``/``add_var``/``bit_and_var``, GPIO
  (``set_gpio_cfg``, ``set_gpio``, ``get_gpio``) and an ``on_finished:`` section that
  runs however the script ends. The device answers ``L``/``+`` at a loop's start/end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SI_PREFIX: dict[str, float] = {
    "a": 1e-18,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    " ": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
OFFSET = 1 << 27
VAR_TYPES = {"ab": "potential", "ba": "current", "eb": "time", "da": "set_potential"}
STATUS_OVERLOAD = 0x2
STATUS_UNDERLOAD = 0x4
STATUS_OVERLOAD_WARNING = 0x8


class MethodScriptError(ValueError):
    """A line that does not follow MethodSCRIPT framing."""


@dataclass
class DataPackage:
    """One parsed ``P`` line: SI values by variable type, plus status flags."""

    values: dict[str, float] = field(default_factory=dict)
    status: int = 0
    current_range: int | None = None

    @property
    def potential(self) -> float | None:
        return self.values.get("ab")

    @property
    def current(self) -> float | None:
        return self.values.get("ba")

    @property
    def time(self) -> float | None:
        return self.values.get("eb")


def encode_value(value: float) -> str:
    """Encode an SI float as the eight characters of a data-package value."""
    for prefix in ("a", "f", "p", "n", "u", "m", " ", "k", "M"):
        scale = SI_PREFIX[prefix]
        n = round(value / scale)
        if abs(n) < OFFSET:
            return f"{n + OFFSET:07X}{prefix}"
    raise MethodScriptError(f"value {value!r} is too large for a data package")


def decode_value(text: str) -> float:
    """Decode the eight characters of a package value (``7F85F3Fu``) to an SI float."""
    if len(text) != 8:
        raise MethodScriptError(f"package value {text!r} is not 8 characters")
    prefix = text[7]
    if prefix not in SI_PREFIX:
        raise MethodScriptError(f"unknown SI prefix {prefix!r} in package value {text!r}")
    try:
        raw = int(text[:7], 16)
    except ValueError as exc:
        raise MethodScriptError(f"package value {text!r} is not hexadecimal") from exc
    return (raw - OFFSET) * SI_PREFIX[prefix]


def parse_package(line: str) -> DataPackage:
    """Parse one data-package line (with or without the trailing newline)."""
    line = line.strip("\r\n")
    if not line.startswith("P") or len(line) < 11:
        raise MethodScriptError(f"not a data package: {line[:40]!r}")
    pkg = DataPackage()
    for part in line[1:].split(";"):
        fields = part.split(",")
        head = fields[0]
        if len(head) != 10:
            raise MethodScriptError(f"package variable {head!r} is not 2+8 characters")
        pkg.values[head[:2]] = decode_value(head[2:])
        for meta in fields[1:]:
            if not meta:
                raise MethodScriptError(f"empty metadata in package variable {part!r}")
            try:
                if meta[0] == "1":
                    pkg.status = int(meta[1:], 16)
                elif meta[0] == "2":
                    pkg.current_range = int(meta[1:], 16)
            except ValueError as exc:
                raise MethodScriptError(f"metadata {meta!r} is not hexadecimal") from exc
    return pkg


def format_package(values: dict[str, float], status: int = 0) -> str:
    """Format a data-package line (no newline); the simulator's side of :func:`parse_package`."""
    parts = [f"{k}{encode_value(v)},1{status:X}" for k, v in values.items()]
    return "P" + ";".join(parts)


def parse_error(line: str) -> tuple[int, str] | None:
    """Return (code, text) if ``line`` is a ``!hhhh`` error line, else None."""
    if not line.startswith("!"):
        return None
    try:
        return int(line[1:5], 16), line[5:].strip(" :")
    except ValueError as exc:
        raise MethodScriptError(f"malformed error line {line!r}") from exc


def literal(value: float) -> str:
    """An SI float as a MethodSCRIPT integer literal with prefix, e.g. 4.2 -> ``4200m``."""
    for prefix in ("", "m", "u", "n", "p"):
        scale = SI_PREFIX[prefix or " "]
        n = value / scale
        if abs(n - round(n)) <= 1e-9 * max(1.0, abs(n)):
            return f"{round(n)}{prefix}"
    return f"{round(value / 1e-12)}p"


def parse_literal(text: str) -> float:
    """Parse a script literal to a number: ``4200m``, ``-8u``, ``10``, ``5i``, ``0x2i``.

    An ``i`` suffix marks an integer (``0x`` hex allowed); otherwise an integer with an
    optional SI prefix.
    """
    text = text.strip()
    if not text:
        raise MethodScriptError("empty literal")
    if text.endswith("i"):
        body = text[:-1]
        try:
            return float(int(body, 16) if body.lower().startswith(("0x", "-0x")) else int(body))
        except ValueError as exc:
            raise MethodScriptError(f"literal {text!r} is not an integer") from exc
    prefix = text[-1] if text[-1] in SI_PREFIX and not text[-1].isdigit() else ""
    body = text[: -1 if prefix else None]
    try:
        number = float(int(body))
    except ValueError as exc:
        raise MethodScriptError(f"literal {text!r} is not an integer with SI prefix") from exc
    return number * (SI_PREFIX[prefix] if prefix else 1.0)


def _packages(*names: str) -> list[str]:
    return ["  timer_get t", "  pck_start", *[f"  pck_add {n}" for n in names], "  pck_end"]


def _until(var: str, condition: str) -> list[str]:
    return [f"  if {var} {condition}", "    breakloop", "  endif"]


def _preamble(*extra_vars: str) -> list[str]:
    lines = ["e", "var p", "var c", "var t", *[f"var {v}" for v in extra_vars]]
    return [*lines, "set_pgstat_mode 2", "timer_start"]


def _finish(lines: list[str]) -> str:
    """Close a script: ``on_finished:`` switches the cell off even after an abort."""
    return "\n".join([*lines, "on_finished:", "cell_off", ""]) + "\n"


def ocp_script(interval: float, duration: float) -> str:
    """Open circuit: cell off, record the open-circuit potential."""
    lines = [*_preamble(), "cell_off", f"meas_loop_ocp p {literal(interval)} {literal(duration)}"]
    return _finish([*lines, *_packages("p", "t"), "endloop"])


def cp_script(current: float, interval: float, duration: float, v_limit: float) -> str:
    """Constant current (chronopotentiometry) until ``v_limit`` is crossed or time runs out."""
    op = ">=" if current >= 0 else "<="
    lines = [*_preamble(), "cell_on"]
    lines.append(f"meas_loop_cp p c {literal(current)} {literal(interval)} {literal(duration)}")
    lines += [*_packages("p", "c", "t"), *_until("p", f"{op} {literal(v_limit)}"), "endloop"]
    return _finish(lines)


def ca_script(potential: float, interval: float, duration: float, i_limit: float) -> str:
    """Constant voltage (chronoamperometry) until ``|I|`` falls to ``i_limit`` or time runs out."""
    lim = literal(abs(i_limit))
    lines = [*_preamble(), "cell_on"]
    lines.append(f"meas_loop_ca p c {literal(potential)} {literal(interval)} {literal(duration)}")
    lines += [*_packages("p", "c", "t"), f"  if c <= {lim}", f"    if c >= -{lim}"]
    lines += ["      breakloop", "    endif", "  endif", "endloop"]
    return _finish(lines)


PAUSE_PIN = 0x1  # GPIO out: high while the cell is paused for a scan
DONE_PIN = 0x2  # GPIO in: the beamline raises it when the scan is done


def triggered_discharge_script(
    current: float,
    v_min: float,
    segment: float,
    interval: float,
    max_pauses: int,
    pause_timeout: float,
) -> str:
    """Seed 001: discharge in segments; after each, pause at OCV and signal the beamline.

    Each segment runs at ``current`` (A, negative = discharge) for ``segment`` s or until
    the potential falls to ``v_min``. Then the cell goes to open circuit, GPIO pin 0
    (``PAUSE_PIN``) goes high, and the OCV is recorded until the beamline raises GPIO pin 1
    (``DONE_PIN``, scan done) or ``pause_timeout`` s pass; pin 0 goes low and the next
    segment starts. The script ends after the pause that follows reaching ``v_min``,
    or after ``max_pauses`` pauses.
    """
    lines = [*_preamble("g", "n", "d"), "set_gpio_cfg 0x1i 1", "set_gpio_cfg 0x2i 0"]
    lines += ["set_gpio 0x0i", "store_var n 0i ja", "store_var d 0i ja"]
    lines += [f"loop n < {max_pauses}i", "cell_on"]
    lines.append(f"meas_loop_cp p c {literal(current)} {literal(interval)} {literal(segment)}")
    lines += [*_packages("p", "c", "t"), "  if p <= " + literal(v_min), "    store_var d 1i ja"]
    lines += ["    breakloop", "  endif", "endloop", "cell_off", "set_gpio 0x1i"]
    lines.append(f"meas_loop_ocp p {literal(interval)} {literal(pause_timeout)}")
    lines += [*_packages("p", "t"), "  get_gpio g", "  bit_and_var g 0x2i"]
    lines += ["  if g != 0i", "    breakloop", "  endif", "endloop", "set_gpio 0x0i"]
    lines += ["add_var n 1i", "if d != 0i", "  breakloop", "endif", "endloop"]
    return _finish(lines)
