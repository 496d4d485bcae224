"""The MethodSCRIPT interpreter of the simulated potentiostat: parse to blocks, then run.

Supported (the subset ``operando`` sends, see ``protocols.methodscript``): ``var``,
``store_var``, ``add_var``, ``copy_var``, ``bit_and_var``, ``set_*`` (``set_gpio_cfg`` and
``set_gpio`` act, the rest are accepted), ``get_gpio``, ``timer_start``, ``timer_get``,
``wait``, ``cell_on``/``cell_off``, ``meas_loop_ocp|cp|ca`` … ``endloop``, ``loop`` …
``endloop``, ``if`` … [``else``] … ``endif``, ``breakloop``, ``pck_start|add|end`` and an
``on_finished:`` section. Parsing is complete before anything runs: a script with one
bad line is refused whole, naming the line.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..protocols import methodscript as ms

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
MEAS_ARGS = {"meas_loop_ocp": 1, "meas_loop_cp": 2, "meas_loop_ca": 2}  # output variables
SIMPLE = {
    "var": 1,
    "store_var": 3,
    "add_var": 2,
    "copy_var": 2,
    "bit_and_var": 2,
    "get_gpio": 1,
    "set_gpio": 1,
    "set_gpio_cfg": 2,
    "timer_start": 0,
    "timer_get": 1,
    "wait": 1,
    "cell_on": 0,
    "cell_off": 0,
    "pck_start": 0,
    "pck_add": 1,
    "pck_end": 0,
    "breakloop": 0,
}


@dataclass
class Cmd:
    """One simple command: words and the script line it came from."""

    words: list[str]
    line: int


@dataclass
class Block:
    """A loop (``meas_loop_*`` or ``loop``) or an ``if`` with its body."""

    words: list[str]
    line: int
    body: list[Cmd | Block] = field(default_factory=list)
    orelse: list[Cmd | Block] = field(default_factory=list)


@dataclass
class Script:
    body: list[Cmd | Block]
    on_finished: list[Cmd | Block]


class Instrument(Protocol):
    """What the interpreter needs from the instrument."""

    def aborted(self) -> bool: ...
    def sleep_until(self, t: float) -> bool: ...  # instrument time; True if aborted meanwhile
    def now(self) -> float: ...
    def cell(self, on: bool) -> None: ...
    def measure(self, kind: str, setpoint: float) -> tuple[float, float]: ...
    def set_mode(self, kind: str, setpoint: float) -> None: ...
    def send(self, line: str) -> None: ...
    def gpio_out(self, value: int) -> None: ...
    def gpio_in(self) -> int: ...


class _BreakLoopSignal(Exception):  # noqa: N818 (control flow, not an error)
    pass


def _check_operand(word: str, declared: set[str]) -> None:
    if word not in declared:
        ms.parse_literal(word)


def parse_script(lines: list[str]) -> Script:
    """Parse script lines (after ``e``) into blocks; raises ``MethodScriptError``."""
    root: list[Cmd | Block] = []
    finished: list[Cmd | Block] = []
    stack: list[tuple[Block, bool]] = []  # (block, in else branch)
    target = root
    declared: set[str] = set()
    for num, raw in enumerate(lines, start=2):
        words = raw.split()
        if not words:
            continue
        cmd = words[0]
        try:
            if cmd == "on_finished:":
                if stack or target is finished:
                    raise ms.MethodScriptError("on_finished: must be at top level, once")
                target = finished
                continue
            if cmd in MEAS_ARGS or cmd in ("loop", "if"):
                block = Block(words, num)
                _validate_block(block, declared)
                (stack[-1][0].orelse if stack and stack[-1][1] else _body(stack, target)).append(
                    block
                )
                stack.append((block, False))
                continue
            if cmd in ("endloop", "endif"):
                want = "endif" if stack and stack[-1][0].words[0] == "if" else "endloop"
                if not stack or cmd != want:
                    raise ms.MethodScriptError(f"unexpected {cmd!r}")
                stack.pop()
                continue
            if cmd == "else":
                if not stack or stack[-1][0].words[0] != "if" or stack[-1][1]:
                    raise ms.MethodScriptError("'else' outside an if block")
                stack[-1] = (stack[-1][0], True)
                continue
            if cmd.startswith("set_") and cmd not in SIMPLE:
                pass  # instrument settings (ranges, bandwidth, mode): accepted
            elif cmd not in SIMPLE:
                raise ms.MethodScriptError(f"unknown command {cmd!r}")
            elif len(words) - 1 != SIMPLE[cmd]:
                raise ms.MethodScriptError(f"{cmd} takes {SIMPLE[cmd]} argument(s)")
            if cmd == "var":
                declared.add(words[1])
            elif cmd == "breakloop" and not any(b.words[0] != "if" for b, _ in stack):
                raise ms.MethodScriptError("breakloop outside a loop")
            elif cmd in ("store_var", "add_var", "bit_and_var", "copy_var"):
                if words[1] not in declared:
                    raise ms.MethodScriptError(f"variable {words[1]!r} is not declared")
                _check_operand(words[2], declared)
            elif cmd in ("get_gpio", "timer_get", "pck_add") and words[1] not in declared:
                raise ms.MethodScriptError(f"variable {words[1]!r} is not declared")
            elif cmd in ("set_gpio", "wait"):
                _check_operand(words[1], declared)
            elif cmd == "set_gpio_cfg":
                ms.parse_literal(words[1])
                ms.parse_literal(words[2])
            cmd_obj = Cmd(words, num)
            if stack:
                (stack[-1][0].orelse if stack[-1][1] else stack[-1][0].body).append(cmd_obj)
            else:
                target.append(cmd_obj)
        except (IndexError, ms.MethodScriptError) as exc:
            raise ms.MethodScriptError(f"Line {num}: {exc}") from exc
    if stack:
        raise ms.MethodScriptError(f"Line {stack[-1][0].line}: block without its end")
    return Script(root, finished)


def _body(stack: list[tuple[Block, bool]], target: list[Cmd | Block]) -> list[Cmd | Block]:
    return stack[-1][0].body if stack else target


def _validate_block(block: Block, declared: set[str]) -> None:
    words = block.words
    cmd = words[0]
    if cmd in ("loop", "if"):
        if len(words) != 4 or words[2] not in COMPARE:
            raise ms.MethodScriptError(f"{cmd} needs: {cmd} A OP B")
        _check_operand(words[1], declared)
        _check_operand(words[3], declared)
        return
    n_out = MEAS_ARGS[cmd]
    n_num = 2 if cmd == "meas_loop_ocp" else 3
    if len(words) != 1 + n_out + n_num:
        raise ms.MethodScriptError(f"{cmd} takes {n_out + n_num} arguments")
    for var in words[1 : 1 + n_out]:
        if var not in declared:
            raise ms.MethodScriptError(f"variable {var!r} is not declared")
    numbers = [ms.parse_literal(w) for w in words[1 + n_out :]]
    if numbers[-2] <= 0:
        raise ms.MethodScriptError("loop interval must be > 0")


class Interpreter:
    """Runs a parsed script against an :class:`Instrument`."""

    def __init__(self, script: Script, inst: Instrument) -> None:
        self.script = script
        self.inst = inst
        self.vars: dict[str, float] = {}
        self.t0 = inst.now()
        self.packet: list[str] = []

    def value(self, word: str) -> float:
        if word in self.vars:
            return self.vars[word]
        return ms.parse_literal(word)

    def run(self) -> None:
        """Run the body; ``on_finished`` runs whatever happens (abort included)."""
        try:
            self.block(self.script.body)
        except _BreakLoopSignal:
            pass
        finally:
            try:
                self.block(self.script.on_finished, final=True)
            except _BreakLoopSignal:
                pass

    def block(self, nodes: list[Cmd | Block], final: bool = False) -> None:
        for node in nodes:
            if self.inst.aborted() and not final:
                return
            if isinstance(node, Cmd):
                self.command(node.words)
            elif node.words[0] == "if":
                self.block(node.body if self.condition(node.words) else node.orelse, final)
            elif node.words[0] == "loop":
                self.inst.send("L")
                try:
                    while self.condition(node.words) and not self.inst.aborted():
                        self.block(node.body, final)
                except _BreakLoopSignal:
                    pass
                self.inst.send("+")
            else:
                self.measurement(node)

    def condition(self, words: list[str]) -> bool:
        return COMPARE[words[2]](self.value(words[1]), self.value(words[3]))

    def command(self, w: list[str]) -> None:
        cmd = w[0]
        inst = self.inst
        if cmd == "var":
            self.vars[w[1]] = 0.0
        elif cmd == "store_var":
            self.vars[w[1]] = self.value(w[2])
        elif cmd == "add_var":
            self.vars[w[1]] += self.value(w[2])
        elif cmd == "copy_var":
            self.vars[w[2]] = self.value(w[1])
        elif cmd == "bit_and_var":
            self.vars[w[1]] = float(int(self.vars[w[1]]) & int(self.value(w[2])))
        elif cmd == "get_gpio":
            self.vars[w[1]] = float(inst.gpio_in())
        elif cmd == "set_gpio":
            inst.gpio_out(int(self.value(w[1])))
        elif cmd == "timer_start":
            self.t0 = inst.now()
        elif cmd == "timer_get":
            self.vars[w[1]] = inst.now() - self.t0
        elif cmd == "wait":
            inst.sleep_until(inst.now() + self.value(w[1]))
        elif cmd in ("cell_on", "cell_off"):
            inst.cell(cmd == "cell_on")
        elif cmd == "pck_start":
            self.packet = []
        elif cmd == "pck_add":
            self.packet.append(w[1])
        elif cmd == "pck_end":
            kinds = {"p": "ab", "c": "ba", "t": "eb"}
            values = {kinds.get(v, "ja"): self.vars.get(v, 0.0) for v in self.packet}
            inst.send(ms.format_package(values))
        elif cmd == "breakloop":
            raise _BreakLoopSignal

    def measurement(self, node: Block) -> None:
        words = node.words
        kind = words[0].removeprefix("meas_loop_")
        n_out = MEAS_ARGS[words[0]]
        outs = words[1 : 1 + n_out]
        numbers = [self.value(x) for x in words[1 + n_out :]]
        setpoint = 0.0 if kind == "ocp" else numbers[0]
        interval, run_time = numbers[-2], numbers[-1]
        self.inst.set_mode(kind, setpoint)
        self.inst.send("M0000")
        start = self.inst.now()
        n = 0
        try:
            while not self.inst.aborted():
                n += 1
                if self.inst.sleep_until(start + n * interval):
                    break
                p, c = self.inst.measure(kind, setpoint)
                self.vars[outs[0]] = p
                if n_out > 1:
                    self.vars[outs[1]] = c
                self.block(node.body)
                if n * interval >= run_time - 1e-9:
                    break
        except _BreakLoopSignal:
            pass
        finally:
            self.inst.set_mode("ocp", 0.0)
        self.inst.send("*")
