"""Fuzzing the boundaries with hypothesis (60 examples each): only our clear errors.

Each parser or loader that reads from outside (the detector stream, the document
socket, the instrument's serial lines, files a user hands over) gets random and mutated
input; whatever it gets, it answers with its own error type (a one-line message) or a
value, never another exception, a hang or unbounded growth.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operando.control.config import load_config
from operando.control.errors import ConfigError
from operando.live_processing.integration.integrate import GeometryError, load_poni
from operando.live_processing.processor import Processor
from operando.protocols import methodscript as ms
from operando.protocols import stream_v2 as sv2
from operando.protocols.processing import ProcessingSettings
from operando.simulators.phantom import Phantom, PhantomError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_IMAGE = sv2.encode(
    sv2.image_message(1, "u", 3, np.arange(12, dtype="<u4").reshape(3, 4), 0.0, 0.01, {"a": 1})
)
VALID_START = sv2.encode(
    sv2.StartMessage(1, "u", 5, 4, 3, 1e-4, 1e-4, 0.01, 0.01, 0.2, 1.0, 2.0, 1.5, {})
)


def mutations() -> st.SearchStrategy[bytes]:
    """Valid messages with bytes flipped, cut or appended."""

    def mutate(base: bytes, at: int, value: int, cut: int) -> bytes:
        b = bytearray(base)
        b[at % len(b)] = value
        return bytes(b[: max(1, len(b) - cut)])

    return st.builds(
        mutate,
        st.sampled_from([VALID_IMAGE, VALID_START]),
        st.integers(0, 10_000),
        st.integers(0, 255),
        st.integers(0, 40),
    )


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutations()))
def test_stream_v2_decoder_answers_only_with_its_error(raw: bytes) -> None:
    try:
        msg = sv2.decode(raw)
    except sv2.StreamProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(msg, sv2.StartMessage | sv2.ImageMessage | sv2.EndMessage)


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_stream_v2_decoder_takes_any_cbor_item(item: object) -> None:
    raw = cbor2.dumps(cbor2.CBORTag(55799, {"type": "image", "data": item}))
    try:
        sv2.decode(raw)
    except sv2.StreamProtocolError:
        pass


DOC_NAMES = ["start", "descriptor", "event", "event_page", "stop", "resource", "datum", "x"]


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    reports: list[dict] = []
    proc = Processor("tcp://127.0.0.1:*", [], None, tmp_path_factory.mktemp("fuzz"),
                     ProcessingSettings(bins=50))  # fmt: skip
    proc.report = lambda **msg: reports.append(msg)  # type: ignore[method-assign]
    yield proc, reports
    proc.close()


@FUZZ
@given(
    st.sampled_from(DOC_NAMES),
    st.dictionaries(
        st.sampled_from(
            [
                "uid",
                "time",
                "run_start",
                "descriptor",
                "data",
                "seq_num",
                "xrdct",
                "name",
                "configuration",
                "timestamps",
                "exit_status",
            ]
        ),
        st.none()
        | st.integers()
        | st.text(max_size=12)
        | st.floats()
        | st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3),
        max_size=8,
    ),
    st.binary(max_size=40),
)
def test_document_handlers_report_and_go_on(processor, name: str, doc: dict, junk: bytes) -> None:
    proc, reports = processor
    before = len(reports)
    proc.on_raw_document(b"prefix " + name.encode() + b" " + json.dumps(doc, default=str).encode())
    proc.on_raw_document(junk)  # no spaces, non-UTF-8 names, anything
    proc.on_frame(junk)
    for r in reports[before:]:
        assert r["event"] in ("error", "probe"), r
    assert len(proc.runs.scans) <= 1 + len(reports)  # nothing grows without a report


@FUZZ
@given(st.text(max_size=120))
def test_methodscript_parsers_answer_only_with_their_error(line: str) -> None:
    for parse in (ms.parse_package, ms.parse_literal, ms.parse_error):
        try:
            parse(line)  # parse_error: None for a line that is no error message
        except ms.MethodScriptError as exc:
            assert str(exc)


TOML_VALUES = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=10),
                        st.booleans(), st.lists(st.integers(), max_size=3))  # fmt: skip


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["epics", "potentiostat", "detector", "processing", "bogus"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "prefix",
                    "v_min",
                    "i_max",
                    "exposure",
                    "bins",
                    "raw",
                    "url",
                    "connection_timeout",
                    "q_range",
                    "method",
                    "x",
                ]
            ),
            TOML_VALUES,
            max_size=4,
        ),
        max_size=3,
    ),
    st.text(max_size=30),
)
def test_config_loader_answers_only_with_config_errors(tables: dict, junk: str) -> None:
    def toml_value(v: object) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    text = "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in keys.items())
        for section, keys in tables.items()
    )
    with tempfile.TemporaryDirectory() as tmp:
        for content in (text, text + "\n" + junk):
            p = Path(tmp) / "c.toml"
            p.write_text(content)
            try:
                load_config(p)
            except ConfigError as exc:
                assert str(exc) and "\n" not in str(exc).strip()


POSITIVE = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FUZZ
@given(POSITIVE, POSITIVE, st.floats(-0.2, 0.2), st.sampled_from(["Pilatus1M", "Eiger4M", "X"]))
def test_poni_loader_refuses_unphysical_geometry(dist, wavelength, poni1, detector) -> None:
    text = (f"poni_version: 2\nDetector: {detector}\nDistance: {dist}\nPoni1: {poni1}\n"
            f"Poni2: 0.1\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: {wavelength}\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "g.poni"
        p.write_text(text)
        try:
            ai = load_poni(p)
        except GeometryError as exc:
            assert str(p) in str(exc)
        else:
            assert ai.dist > 0 and ai.wavelength > 0 and np.isfinite([ai.dist, ai.wavelength]).all()


@FUZZ
@given(
    st.floats(width=32),
    st.lists(st.floats(width=32), min_size=1, max_size=9),
    st.lists(st.floats(width=32), min_size=1, max_size=9),
)
def test_phantom_refuses_unphysical_maps(pixel: float, fraction: list, lattice: list) -> None:
    n = int(np.sqrt(len(fraction))) or 1
    frac = np.resize(np.asarray(fraction, dtype=float), (n, n))
    m = int(np.sqrt(len(lattice))) or 1
    a = np.resize(np.asarray(lattice, dtype=float), (m, m))
    ph = Phantom(pixel, {"LiMn2O4": frac}, {"LiMn2O4": a})
    try:
        ph.validate()  # what the phantom loader and the simulators call
    except PhantomError as exc:
        assert str(exc)
    else:
        assert np.isfinite(ph.pixel_size) and ph.pixel_size > 0
        assert frac.shape == a.shape
        assert np.isfinite(frac).all() and (frac >= 0).all() and frac.max() <= 1 + 1e-6
        assert np.isfinite(a).all() and (a[frac > 0] > 0).all()
