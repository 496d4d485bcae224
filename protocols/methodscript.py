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
- Script literals are integers with an SI prefix, e.g. ``4200m`` or ``8u``.
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
    """Parse a script literal (``4200m``, ``-8u``, ``10``) to an SI float."""
    text = text.strip()
    if not text:
        raise MethodScriptError("empty literal")
    prefix = text[-1] if text[-1] in SI_PREFIX and not text[-1].isdigit() else ""
    body = text[: -1 if prefix else None]
    try:
        number = float(int(body))
    except ValueError as exc:
        raise MethodScriptError(f"literal {text!r} is not an integer with SI prefix") from exc
    return number * (SI_PREFIX[prefix] if prefix else 1.0)


def _loop_body(limit_var: str, condition: str) -> list[str]:
    body = [
        "  timer_get t",
        "  pck_start",
        "  pck_add p",
        "  pck_add c",
        "  pck_add t",
        "  pck_end",
    ]
    if condition:
        body += [f"  if {limit_var} {condition}", "    breakloop", "  endif"]
    return body


def _preamble() -> list[str]:
    return ["e", "var p", "var c", "var t", "set_pgstat_mode 2", "timer_start"]


def ocp_script(interval: float, duration: float) -> str:
    """Open circuit: cell off, record the open-circuit potential."""
    lines = [*_preamble(), "cell_off", f"meas_loop_ocp p {literal(interval)} {literal(duration)}"]
    lines += [*_loop_body("p", ""), "endloop", ""]
    return "\n".join(lines) + "\n"


def cp_script(current: float, interval: float, duration: float, v_limit: float) -> str:
    """Constant current (chronopotentiometry) until ``v_limit`` is crossed or time runs out."""
    op = ">=" if current >= 0 else "<="
    lines = [*_preamble(), "cell_on"]
    lines.append(f"meas_loop_cp p c {literal(current)} {literal(interval)} {literal(duration)}")
    lines += [*_loop_body("p", f"{op} {literal(v_limit)}"), "endloop", "cell_off", ""]
    return "\n".join(lines) + "\n"


def ca_script(potential: float, interval: float, duration: float, i_limit: float) -> str:
    """Constant voltage (chronoamperometry) until ``|I|`` falls to ``i_limit`` or time runs out."""
    lines = [*_preamble(), "cell_on"]
    lines.append(f"meas_loop_ca c {literal(potential)} {literal(interval)} {literal(duration)}")
    lines += [*_loop_body("c", f"<= {literal(abs(i_limit))}"), "endloop", "cell_off", ""]
    return "\n".join(lines) + "\n"
