import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operando.devices.methodscript_client import MethodScriptClient
from operando.protocols import methodscript as ms


def test_value_encoding_matches_the_documented_example() -> None:
    # MethodSCRIPT docs: "ba48D503Dp" -> 0x48D503D - 2**27 = -58,933,187 pA
    assert ms.decode_value("48D503Dp") == pytest.approx((0x48D503D - 2**27) * 1e-12)
    assert ms.decode_value("8000000 ") == 0.0


@given(st.floats(min_value=-100, max_value=100, allow_nan=False))
def test_encode_decode_round_trip(value: float) -> None:
    text = ms.encode_value(value)
    back = ms.decode_value(text)
    scale = ms.SI_PREFIX[text[-1]]
    # the finest prefix that fits is used, so the error is at most half its step
    assert abs(back - value) <= 0.5 * scale * (1 + 1e-9)
    assert abs(back - value) <= 2**10 / 2**27 * abs(value) + 1e-18


def test_package_parse() -> None:
    line = ms.format_package({"ab": 4.1234, "ba": -8e-6, "eb": 12.5}, status=2)
    pkg = ms.parse_package(line)
    assert pkg.potential == pytest.approx(4.1234, rel=1e-6)
    assert pkg.current == pytest.approx(-8e-6, rel=1e-6)
    assert pkg.time == pytest.approx(12.5)
    assert pkg.status == ms.STATUS_OVERLOAD


def test_literals() -> None:
    assert ms.literal(4.2) == "4200m"
    assert ms.literal(8e-6) == "8u"
    assert ms.literal(10) == "10"
    assert ms.parse_literal("4200m") == pytest.approx(4.2)
    assert ms.parse_literal("-8u") == pytest.approx(-8e-6)
    with pytest.raises(ms.MethodScriptError):
        ms.parse_literal("4.2x")


def test_scripts_have_methodscript_framing() -> None:
    script = ms.cp_script(16.7e-6, 1.0, 1800.0, 4.3)
    lines = script.split("\n")
    assert lines[0] == "e" and script.endswith("\n\n")
    assert "meas_loop_cp p c 16700n 1 1800" in lines
    assert "  if p >= 4300m" in lines and "cell_off" in lines


@settings(max_examples=300, deadline=200)
@given(st.text(alphabet="P0123456789ABCDEFabcdefmunp ;,!xyz\t", max_size=60))
def test_parser_fuzz_clear_errors_never_hangs(text: str) -> None:
    try:
        ms.parse_package(text)
    except ms.MethodScriptError:
        pass


class _NullPort:
    def read(self, n: int) -> bytes:
        return b""


@settings(max_examples=200, deadline=200)
@given(st.text(max_size=80))
def test_client_line_handler_survives_garbage(text: str) -> None:
    client = MethodScriptClient.__new__(MethodScriptClient)
    client.on_package = None
    client._run = None
    client.malformed = 0
    import queue

    client._replies = queue.Queue()
    for line in text.split("\n"):
        client.handle_line(line, 0.0)
