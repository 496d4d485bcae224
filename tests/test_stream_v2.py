import cbor2
import numpy as np
import pytest

from operando.protocols import stream_v2 as sv2


@pytest.mark.parametrize("dtype", ["u1", "<u2", "<u4", "<i4", "<f4", "<f8"])
def test_image_round_trip(dtype: str) -> None:
    data = (np.arange(12).reshape(3, 4) * 7).astype(dtype)
    msg = sv2.image_message(5, "abc", 17, data, 1.5, 0.01, {"angle": 30.0, "translation": -0.1})
    back = sv2.decode(sv2.encode(msg))
    assert isinstance(back, sv2.ImageMessage)
    assert back.image_id == 17 and back.series_id == 5 and back.series_unique_id == "abc"
    assert back.data.dtype == np.dtype(dtype) and np.array_equal(back.data, data)
    assert back.user_data == {"angle": 30.0, "translation": -0.1}
    assert back.real_time == (10_000_000, 1_000_000_000)
    assert back.stop_time[0] - back.start_time[0] == 10_000_000


def test_start_and_end_round_trip() -> None:
    start = sv2.StartMessage(
        3,
        "u",
        10,
        368,
        419,
        6.88e-4,
        6.88e-4,
        0.01,
        0.01,
        0.248,
        1.0,
        184.0,
        209.5,
        {"run": {"uid": "x"}},
    )
    back = sv2.decode(sv2.encode(start))
    assert back == start
    assert sv2.decode(sv2.encode(sv2.EndMessage(3, "u"))) == sv2.EndMessage(3, "u")


def test_wire_format_is_self_described_cbor_with_rfc8746_array() -> None:
    raw = sv2.encode(sv2.image_message(1, "s", 0, np.ones((2, 2), "<u4"), 0, 0.01, {}))
    assert raw[:3] == b"\xd9\xd9\xf7"  # tag 55799
    item = cbor2.loads(raw)
    arr = item["data"]["threshold_1"]
    assert arr.tag == 40 and arr.value[1].tag == 70 and list(arr.value[0]) == [2, 2]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\x00",
        cbor2.dumps({"no": "type"}),
        cbor2.dumps({"type": "image"}),
        cbor2.dumps({"type": "weird"}),
    ],
)
def test_malformed_messages_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(sv2.StreamProtocolError):
        sv2.decode(raw)


def test_compressed_data_is_refused_clearly() -> None:
    comp = cbor2.CBORTag(56500, ["bslz4", 4, b"xx"])
    body = {
        "type": "image",
        "series_id": 1,
        "series_unique_id": "s",
        "image_id": 0,
        "real_time": [1, 1],
        "start_time": [0, 1],
        "stop_time": [1, 1],
        "data": {"threshold_1": cbor2.CBORTag(40, [[1, 1], comp])},
    }
    with pytest.raises(sv2.StreamProtocolError, match="compression"):
        sv2.decode(cbor2.dumps(body))
