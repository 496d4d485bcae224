"""Dectris Stream V2 messages: CBOR ``start`` / ``image`` / ``end`` over ZMQ PUSH/PULL.

Each ZMQ message is one CBOR item (self-described, tag 55799) holding a map with a
``type`` key. Image data follow RFC 8746: a row-major multi-dimensional array (tag 40)
of ``[dims, typed array]``, where the typed array is a little-endian tag (e.g. 70 for
uint32). Uncompressed only; the Dectris compression tag (56500) is refused clearly.

``user_data`` of ``start`` and ``image`` messages carries our per-series and per-frame
context (run uid, angle, translation, monitor), as the detector's user data would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import numpy as np

SELF_DESCRIBED = 55799
MULTI_DIM_ROW_MAJOR = 40
DECTRIS_COMPRESSION = 56500

# RFC 8746 typed-array tags (little endian) <-> numpy dtypes
_TAG_TO_DTYPE: dict[int, str] = {
    64: "u1",
    69: "<u2",
    70: "<u4",
    71: "<u8",
    72: "i1",
    77: "<i2",
    78: "<i4",
    79: "<i8",
    85: "<f4",
    86: "<f8",
}
_DTYPE_TO_TAG = {np.dtype(v).str: k for k, v in _TAG_TO_DTYPE.items()}


class StreamProtocolError(ValueError):
    """A message that is not valid Stream V2 (as far as this implementation reads it)."""


@dataclass
class StartMessage:
    """Opens a series: detector geometry and the series' user data."""

    series_id: int
    series_unique_id: str
    number_of_images: int
    image_size_x: int
    image_size_y: int
    pixel_size_x: float
    pixel_size_y: float
    count_time: float
    frame_time: float
    incident_wavelength: float
    detector_distance: float
    beam_center_x: float
    beam_center_y: float
    user_data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageMessage:
    """One frame of a series, with its index and per-frame user data."""

    series_id: int
    series_unique_id: str
    image_id: int
    data: np.ndarray
    real_time: tuple[int, int]
    start_time: tuple[int, int]
    stop_time: tuple[int, int]
    user_data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EndMessage:
    """Closes a series."""

    series_id: int
    series_unique_id: str


Message = StartMessage | ImageMessage | EndMessage


def _encode_array(arr: np.ndarray) -> cbor2.CBORTag:
    a = np.ascontiguousarray(arr)
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    key = np.dtype(dt).str
    if key not in _DTYPE_TO_TAG:
        raise StreamProtocolError(f"image dtype {a.dtype} has no RFC 8746 tag")
    typed = cbor2.CBORTag(_DTYPE_TO_TAG[key], a.astype(dt, copy=False).tobytes())
    return cbor2.CBORTag(MULTI_DIM_ROW_MAJOR, [list(a.shape), typed])


def _decode_array(tag: Any) -> np.ndarray:
    if not isinstance(tag, cbor2.CBORTag) or tag.tag != MULTI_DIM_ROW_MAJOR:
        raise StreamProtocolError("image data is not a row-major multi-dimensional array (tag 40)")
    dims, typed = tag.value
    if isinstance(typed, cbor2.CBORTag) and typed.tag == DECTRIS_COMPRESSION:
        raise StreamProtocolError(
            f"compressed image data ({typed.value[0]!r}) is not supported; "
            "set the detector's stream compression to 'none'"
        )
    if not isinstance(typed, cbor2.CBORTag) or typed.tag not in _TAG_TO_DTYPE:
        raise StreamProtocolError(f"unsupported typed-array tag in image data: {typed!r:.60}")
    arr = np.frombuffer(typed.value, dtype=_TAG_TO_DTYPE[typed.tag])
    if arr.size != int(np.prod(dims)):
        raise StreamProtocolError(f"image data holds {arr.size} values, dims {dims} need more")
    return arr.reshape(dims)


def _ns_pair(seconds: float) -> list[int]:
    """A rational (numerator, denominator) time in nanoseconds, as Stream V2 writes times."""
    return [round(seconds * 1e9), 1_000_000_000]


def encode(msg: Message) -> bytes:
    """Serialise one message to the bytes of a single ZMQ frame."""
    body: dict[str, Any]
    if isinstance(msg, StartMessage):
        body = {"type": "start", **msg.__dict__}
        body["channels"] = ["threshold_1"]
    elif isinstance(msg, ImageMessage):
        body = {
            "type": "image",
            "series_id": msg.series_id,
            "series_unique_id": msg.series_unique_id,
            "image_id": msg.image_id,
            "real_time": list(msg.real_time),
            "start_time": list(msg.start_time),
            "stop_time": list(msg.stop_time),
            "data": {"threshold_1": _encode_array(msg.data)},
            "user_data": msg.user_data,
        }
    else:
        body = {"type": "end", "series_id": msg.series_id, "series_unique_id": msg.series_unique_id}
    return cbor2.dumps(cbor2.CBORTag(SELF_DESCRIBED, body))


def _plain(obj: Any) -> Any:
    """frozendict/tuple from the CBOR decoder -> plain dict/list."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


def decode(raw: bytes | memoryview) -> Message:
    """Parse one ZMQ frame into a message; raises :class:`StreamProtocolError` if malformed."""
    try:
        item = cbor2.loads(raw)
    except Exception as exc:  # cbor2 raises several types
        raise StreamProtocolError(f"not a CBOR item ({len(raw)} bytes): {exc}") from exc
    if isinstance(item, cbor2.CBORTag) and item.tag == SELF_DESCRIBED:
        item = item.value
    if not isinstance(item, Mapping) or "type" not in item:
        raise StreamProtocolError("Stream V2 message is not a map with a 'type' key")
    kind = item["type"]
    try:
        if kind == "start":
            names = StartMessage.__dataclass_fields__
            start = StartMessage(**{k: item[k] for k in names if k in item})
            _check_start(start)
            start.user_data = _plain(start.user_data)
            return start
        if kind == "image":
            channels = item["data"]
            if not isinstance(channels, Mapping) or not channels:
                raise StreamProtocolError(
                    "Stream V2 image message: 'data' is not a map of channels"
                )
            data = _decode_array(next(iter(channels.values())))
            return ImageMessage(
                series_id=_integer(item, "series_id"),
                series_unique_id=_text(item, "series_unique_id"),
                image_id=_integer(item, "image_id"),
                data=data,
                real_time=_time(item, "real_time"),
                start_time=_time(item, "start_time"),
                stop_time=_time(item, "stop_time"),
                user_data=_plain(_map(item.get("user_data") or {}, "user_data")),
            )
        if kind == "end":
            return EndMessage(
                series_id=_integer(item, "series_id"),
                series_unique_id=_text(item, "series_unique_id"),
            )
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        if isinstance(exc, StreamProtocolError):
            raise
        raise StreamProtocolError(f"Stream V2 {kind!r} message lacks a field: {exc}") from exc
    raise StreamProtocolError(f"unknown Stream V2 message type {kind!r:.40}")


def _integer(item: Mapping[str, Any], key: str) -> int:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StreamProtocolError(f"Stream V2 field {key} = {value!r:.40} is not a count (int ≥ 0)")
    return value


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise StreamProtocolError(f"Stream V2 field {key} = {value!r:.40} is not a string")
    return value


def _map(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StreamProtocolError(f"Stream V2 field {key} = {value!r:.40} is not a map")
    return value


def _time(item: Mapping[str, Any], key: str) -> tuple[int, int]:
    """A rational time ``[numerator, denominator]`` (denominator > 0)."""
    value = item[key]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[1] <= 0
    ):
        raise StreamProtocolError(f"Stream V2 field {key} = {value!r:.40} is not a rational time")
    return (value[0], value[1])


def _check_start(start: StartMessage) -> None:
    """The start message's counts are counts, its lengths finite numbers."""
    for key in ("series_id", "number_of_images", "image_size_x", "image_size_y"):
        _integer(vars(start), key)
    _text(vars(start), "series_unique_id")
    for key in (
        "pixel_size_x",
        "pixel_size_y",
        "count_time",
        "frame_time",
        "incident_wavelength",
        "detector_distance",
        "beam_center_x",
        "beam_center_y",
    ):
        value = getattr(start, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise StreamProtocolError(
                f"Stream V2 start field {key} = {value!r:.40} is not a number"
            )
    _map(start.user_data, "user_data")


def image_message(
    series_id: int,
    series_unique_id: str,
    image_id: int,
    data: np.ndarray,
    t_start: float,
    exposure: float,
    user_data: dict[str, Any],
) -> ImageMessage:
    """Build an image message whose times are given in seconds since the series' arm."""
    return ImageMessage(
        series_id=series_id,
        series_unique_id=series_unique_id,
        image_id=image_id,
        data=data,
        real_time=tuple(_ns_pair(exposure)),  # type: ignore[arg-type]
        start_time=tuple(_ns_pair(t_start)),  # type: ignore[arg-type]
        stop_time=tuple(_ns_pair(t_start + exposure)),  # type: ignore[arg-type]
        user_data=user_data,
    )
