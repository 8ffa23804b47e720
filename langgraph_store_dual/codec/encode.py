"""Encoding: Python values to JSON-compatible trees.

Plain JSON encodes to itself; other values become the typed envelopes of the type table.
Dispatch is on the exact type: `ENCODERS` (derived from the table at import, then
remembering user classes as they are met), with str, dict, list, int, float, bool and
None checked first, inline.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from datetime import date, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import BaseModel

from ..errors import ConfigError
from . import encode_classes  # encoders of classes met later (given this module's kit)
from .policy import PICKLE, pickle_mac
from .syntax import (
    ESCAPED_KEYS,
    MAP_ORDER,
    MAP_PAIRS,
    MAP_RESERVED,
    MISSING,
    TAG,
    b64,
    qualname,
    split_unstorable,
    storable,
)
from .table import (
    BIG_INT,
    FLOAT,
    MAP,
    ROWS,
    SERDE,
    TIMEZONE,
    UNSTORABLE_STR,
    Envelope,
    Form,
)

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_UTC = timezone.utc
_CACHE_CAP = 4096  # at most this many types in ENCODERS (the rest are looked up each time)
_STR, _INT, _FLOAT, _MAP, _SERDE, _TZ = (
    row.tag for row in (UNSTORABLE_STR, BIG_INT, FLOAT, MAP, SERDE, TIMEZONE)
)

Encoder = Callable[[Any, "EncodeContext"], Any]


class EncodeContext:
    """The serde fallback (None: unknown types are a TypeError) and the key signing the
    pickles it makes (None: pickles are refused)."""

    __slots__ = ("pickle_key", "serde")

    def __init__(self, serde: SerializerProtocol | None, pickle_key: bytes | None = None) -> None:
        self.serde = serde
        self.pickle_key = pickle_key


PLAIN = EncodeContext(None)
"""Encoding without a serializer."""


def encode(v: Any, ec: EncodeContext) -> Any:
    """Encode one value into a JSON-compatible tree."""
    t = type(v)
    if t is str:
        if (v.isascii() and "\x00" not in v) or storable(v):  # its ASCII case inlined
            return v
        return {TAG: _STR, "v": split_unstorable(v)}
    if t is dict:
        return encode_fields(v, ec)
    if t is list:
        return _list(v, ec)
    if t is int:
        if _I64_MIN <= v <= _I64_MAX:
            return v
        return {TAG: _INT, "v": format(v, "x")}
    if v is None or t is bool:
        return v
    if t is float:
        # NaN/inf/-0.0 are not storable; JSONB prints |v| >= 1e16 without an exponent or
        # fraction, so such floats would come back as ints: envelope them all.
        if -1e16 < v < 1e16 and (v != 0.0 or str(v)[0] != "-"):
            return v
        return {TAG: _FLOAT, "v": repr(v)}
    f = ENCODERS.get(t)
    if f is not None:
        return f(v, ec)
    return _new_type(v, ec)


def _list(v: list[Any], ec: EncodeContext) -> list[Any]:
    out: list[Any] = []
    app = out.append
    for x in v:
        if type(x) is str and x.isascii() and "\x00" not in x:
            app(x)
        else:
            app(encode(x, ec))
    return out


def encode_fields(d: dict[Any, Any], ec: EncodeContext) -> dict[str, Any]:
    """Encode a dict as itself if JSON can hold its keys (JSON text keeps their order)."""
    out = {}
    for k, x in d.items():
        if (
            type(k) is not str
            or k in ESCAPED_KEYS
            or not ((k.isascii() and "\x00" not in k) or storable(k))  # ASCII case inline
        ):
            return _map(d, ec)
        if type(x) is str and x.isascii() and "\x00" not in x:
            out[k] = x
        else:
            out[k] = encode(x, ec)
    return out


def _map(d: dict[Any, Any], ec: EncodeContext) -> dict[str, Any]:
    """A dict JSON cannot hold as-is: plain keys stay inline (readable and filterable in
    SQL), the others go to ``"$m"`` as ``[key, value]`` pairs.

    ``"$o"`` gives the full key order (str: inline key, int: index in ``"$m"``) when the
    stored form would lose it: pairs interleaved with inline keys. (Before schema version
    4, snapshots on PostgreSQL were JSONB, which sorts keys, and ``"$o"`` also recorded
    the order of inline keys; decoding still honours it.)
    """
    pairs: list[list[Any]] = []
    seq: list[Any] = []
    out: dict[str, Any] = {TAG: _MAP}
    interleaved = False
    for k, x in d.items():
        if type(k) is str and k not in MAP_RESERVED and storable(k):
            out[k] = encode(x, ec)
            seq.append(k)
            interleaved = interleaved or bool(pairs)
        else:
            seq.append(len(pairs))
            pairs.append([encode(k, ec), encode(x, ec)])
    if pairs:
        out[MAP_PAIRS] = pairs
    if interleaved:
        out[MAP_ORDER] = seq
    return out


def encode_serde(v: Any, ec: EncodeContext) -> dict[str, Any]:
    """Hand ``v`` whole to the serializer; stored as ``{"$t": "serde", "s": type, "b": b64}``."""
    serde = ec.serde
    if serde is None:
        raise TypeError(f"cannot encode a value of type {qualname(type(v))} as typed JSON")
    try:
        type_str, data = serde.dumps_typed(v)
    except Exception as exc:
        raise TypeError(
            f"cannot encode a value of type {qualname(type(v))}: "
            f"the serializer refused it ({type(exc).__name__}: {exc})"
        ) from exc
    out = {TAG: _SERDE, "s": encode(type_str, PLAIN), "b": b64(data)}
    if type_str == PICKLE:
        if ec.pickle_key is None:
            raise ConfigError(
                f"the serializer pickled a {qualname(type(v))} (pickle_fallback): a pickle "
                "runs code when read, so the saver stores one only if it can sign it; set "
                "the saver's pickle_key to a secret of 32 random bytes, or make the value "
                "serializable without pickle"
            )
        out["k"] = pickle_mac(ec.pickle_key, data)
    return out


_PLAIN_DEFAULTS = (str, int, bool, dict, list, tuple)


def is_default(value: Any, default: Any) -> bool:
    """Cheap "equals the field default" test (identity, or equal plain value)."""
    if value is default:
        return True
    return type(value) is type(default) and type(default) in _PLAIN_DEFAULTS and value == default


def _plain_type(default: Any) -> type | None:
    """The type a value must have to equal `default` in `is_default`'s sense, beyond
    identity (None: only the default itself is it)."""
    return type(default) if type(default) in _PLAIN_DEFAULTS and default is not MISSING else None


# ---- the forms of the fixed types: each makes the encoder of one type of a row


def _items(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: Any, ec: EncodeContext) -> Any:
        return {TAG: tag, "v": [encode(x, ec) for x in v]}

    return enc


def _deque(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: deque[Any], ec: EncodeContext) -> Any:
        out: dict[str, Any] = {TAG: tag, "v": [encode(x, ec) for x in v]}
        if v.maxlen is not None:
            out["m"] = v.maxlen
        return out

    return enc


def _base64(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: bytes | bytearray, ec: EncodeContext) -> Any:
        return {TAG: tag, "v": b64(v)}

    return enc


def _text(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: Any, ec: EncodeContext) -> Any:
        return {TAG: tag, "v": encode(str(v), PLAIN)}

    return enc


def _date(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: date, ec: EncodeContext) -> Any:
        return {TAG: tag, "v": v.isoformat()}

    return enc


def _timedelta(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: timedelta, ec: EncodeContext) -> Any:
        return {TAG: tag, "v": [v.days, v.seconds, v.microseconds]}

    return enc


def _tz_needs_name(tz: timezone) -> bool:
    off = tz.utcoffset(None)
    return tz.tzname(None) != timezone(off).tzname(None)


def _timezone(tz: timezone, ec: EncodeContext) -> Any:
    off = tz.utcoffset(None)
    out: dict[str, Any] = {TAG: _TZ, "v": off // timedelta(microseconds=1)}
    if _tz_needs_name(tz):
        out["n"] = encode(tz.tzname(None), PLAIN)
    return out


def _tz_field(tz: Any) -> Any:
    """``"z"`` field for a tzinfo: None if not needed, MISSING if unsupported."""
    tt = type(tz)
    if tt is timezone:
        if tz is _UTC:
            return None
        # named zones and sub-second offsets do not survive isoformat/fromisoformat
        if _tz_needs_name(tz) or tz.utcoffset(None).microseconds:
            return _timezone(tz, PLAIN)
        return None
    if tt is ZoneInfo:
        key = tz.key
        if type(key) is str and storable(key):
            return key
    return MISSING


def _temporal(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: Any, ec: EncodeContext) -> Any:
        out: dict[str, Any] = {TAG: tag, "v": v.isoformat()}
        tz = v.tzinfo
        if tz is not None:
            z = _tz_field(tz)
            if z is MISSING:
                return encode_serde(v, ec)
            if z is not None:
                out["z"] = z
        if v.fold:
            out["f"] = 1
        return out

    return enc


def _zone(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: ZoneInfo, ec: EncodeContext) -> Any:
        if type(v.key) is not str:
            return encode_serde(v, ec)
        return {TAG: tag, "v": encode(v.key, PLAIN)}

    return enc


def _pattern(row: Envelope, cls: type) -> Encoder:
    tag = row.tag

    def enc(v: re.Pattern[Any], ec: EncodeContext) -> Any:
        p = v.pattern
        out = {TAG: tag, "v": encode(p, PLAIN)}
        if v.flags != (re.UNICODE if type(p) is str else 0):
            out["f"] = v.flags
        return out

    return enc


def fixed_encoder(row: Envelope, cls: type) -> Encoder:
    """A fixed class: named fields at top level, defaults omitted."""
    tag, fields = row.tag, row.fields

    def enc(v: Any, ec: EncodeContext) -> Any:
        out: dict[str, Any] = {TAG: tag}
        for name, default in fields:
            x = getattr(v, name, MISSING)
            if x is MISSING or (default is not MISSING and is_default(x, default)):
                continue
            out[name] = encode(x, ec)
        return out

    return enc


def _message(row: Envelope, cls: type) -> Encoder:
    """A LangChain message: ``{"$t": "msg", "type": <type literal>, "content": ...,
    <fields not at their default>}``."""
    assert issubclass(cls, BaseModel)
    tag, tname = row.tag, cls.model_fields["type"].default
    # (name, default, the default's type if a value of it equal to it is the default)
    opt: list[tuple[str, Any, type | None]] = []
    for name, info in cls.model_fields.items():
        if name in ("type", "content"):
            continue
        if info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        elif info.is_required():
            default = MISSING
        else:
            default = info.default
        opt.append((name, default, _plain_type(default)))
    fields = tuple(opt)
    names = frozenset(cls.model_fields)

    def enc(m: Any, ec: EncodeContext) -> Any:
        d = m.__dict__
        out: dict[str, Any] = {TAG: tag, "type": tname}
        content = d["content"]
        if content != "" or type(content) is not str:
            out["content"] = encode(content, ec)
        for name, default, plain in fields:  # `is_default` inline: every message, every field
            x = d.get(name)
            if x is default or (type(x) is plain and x == default):
                continue
            if type(x) is str and x.isascii() and "\x00" not in x:
                out[name] = x
            else:
                out[name] = encode(x, ec)
        extra = m.__pydantic_extra__
        if extra:
            for k, x in extra.items():
                if type(k) is not str or k == TAG or k in names or not storable(k):
                    return encode_serde(m, ec)
                out[k] = encode(x, ec)
        return out

    return enc


FORMS: dict[Form, Callable[[Envelope, type], Encoder]] = {
    "items": _items,
    "deque": _deque,
    "base64": _base64,
    "temporal": _temporal,
    "date": _date,
    "timedelta": _timedelta,
    "timezone": lambda row, cls: _timezone,
    "zone": _zone,
    "text": _text,
    "pattern": _pattern,
    "fixed": fixed_encoder,
    "message": _message,
}
ENCODERS: dict[type, Encoder] = {
    cls: FORMS[row.form](row, cls) for row in ROWS for cls in row.types
}
"""Exact type -> its encoder: the table's fixed types, then user classes as they are met."""


def _new_type(v: Any, ec: EncodeContext) -> Any:
    """Encode a value of a type not in `ENCODERS`, remembering the type's encoder."""
    t = type(v)
    f = encode_classes.class_encoder(t, _kit()) or encode_serde
    if len(ENCODERS) < _CACHE_CAP:
        ENCODERS[t] = f
    return f(v, ec)


def _kit() -> encode_classes.Kit:
    """The functions the encoders of `encode_classes` recurse into."""
    return encode_classes.Kit(encode, encode_fields, fixed_encoder)
