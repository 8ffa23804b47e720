"""Typed JSON encoding of checkpoint values.

Values are turned into a *JSON-compatible tree* (dict with str keys, list, str, int,
float, bool, None) that both orjson and PostgreSQL JSONB store unchanged. Plain JSON
encodes to itself; everything else becomes a *typed envelope*: a dict holding the
reserved key ``"$t"`` (the type tag) and payload keys, e.g. ``{"$t": "tup", "v": [1, 2]}``.

Reviving an envelope never imports or calls anything outside an allowlist: standard
types, LangChain messages and ``Document``, and LangGraph ``Send`` / ``Interrupt`` /
``Command`` / ``TimeoutPolicy`` / ``_DeltaSnapshot`` are fixed; user classes (enum,
dataclass, namedtuple, pydantic) follow the serializer's ``allowed_msgpack_modules``
policy. Unknown types fall back to the checkpoint serializer (``serde``); the classes a
JsonPlusSerializer msgpack payload names are checked against the same policy first.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import importlib
import re
import sys
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path, PosixPath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import ormsgpack
from langchain_core import messages as _lc_messages
from langchain_core.documents import Document
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from pydantic import BaseModel, SecretBytes, SecretStr

from .errors import ConfigError, DecodeError, MissingValueError, UnsafeTypeError
from .fresh import copier

try:  # LangGraph's own list of types that are always safe to revive.
    from langgraph.checkpoint.serde._msgpack import (
        SAFE_MSGPACK_TYPES as _LG_SAFE,
    )
    from langgraph.checkpoint.serde._msgpack import (
        STRICT_MSGPACK_ENABLED as _LG_STRICT,
    )
except ImportError:  # pragma: no cover - older/newer layouts
    _LG_SAFE = frozenset()
    _LG_STRICT = False

__all__ = [
    "MAP_ORDER",
    "MAP_PAIRS",
    "REF",
    "SPLICE",
    "TAG",
    "JsonCodec",
    "ValueCache",
    "decode_plain",
    "encode_plain",
]

TAG = "$t"
"""Reserved key marking a typed envelope."""
MAP_PAIRS = "$m"
"""Key of a ``map`` envelope holding the ``[key, value]`` pairs JSON cannot hold inline."""
MAP_ORDER = "$o"
"""Key of a ``map`` envelope giving the full key order when the stored form loses it."""
REF = "$r"
"""Key of ``{"$r": hash}``: a value stored once per thread (see ``core.intern``)."""
SPLICE = "$s"
"""Key of ``{"$s": hash}`` in a list: a stored run of items, spliced in its place."""

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_BAD_CHARS = re.compile("([\x00\ud800-\udfff])")
_MISSING: Any = object()
_UTC = timezone.utc
_ENC_CACHE_CAP = 4096
_MAP_RESERVED = frozenset({TAG, MAP_PAIRS, MAP_ORDER})
_ESCAPED_KEYS = frozenset({TAG, REF, SPLICE})  # plain dicts with these keys become maps

Encoder = Callable[[Any, "_EncCtx"], Any]


# --------------------------------------------------------------------------- helpers


def _text_ok(s: str) -> bool:
    """True if ``s`` has no NUL and no lone surrogate (storable in orjson and JSONB)."""
    if s.isascii():
        return "\x00" not in s
    if "\x00" in s:
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _enc_bad_str(s: str) -> dict[str, Any]:
    """Envelope a str holding NUL/lone surrogates: safe runs stay text, bad chars become ints."""
    parts: list[Any] = []
    for i, part in enumerate(_BAD_CHARS.split(s)):
        if i % 2:
            parts.append(ord(part))
        elif part:
            parts.append(part)
    return {TAG: "s", "v": parts}


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _b64(data: bytes | bytearray) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_default(value: Any, default: Any) -> bool:
    """Cheap "equals the field default" test (identity, or equal plain value)."""
    if value is default:
        return True
    return (
        type(value) is type(default)
        and type(default) in (str, int, bool, dict, list, tuple)
        and value == default
    )


# --------------------------------------------------------------------------- encoding


class _EncCtx:
    """Encoding context: the serde fallback (None: unknown types are a TypeError) and
    the key signing the pickles it makes (None: pickles are refused)."""

    __slots__ = ("pickle_key", "serde")

    def __init__(self, serde: SerializerProtocol | None, pickle_key: bytes | None = None) -> None:
        self.serde = serde
        self.pickle_key = pickle_key


_PLAIN_EC = _EncCtx(None)


def _enc(v: Any, ec: _EncCtx) -> Any:
    """Encode one value into a JSON-compatible tree."""
    t = type(v)
    if t is str:
        if v.isascii():
            if "\x00" not in v:
                return v
        elif _text_ok(v):
            return v
        return _enc_bad_str(v)
    if t is dict:
        return _enc_fields(v, ec)
    if t is list:
        return _enc_list(v, ec)
    if t is int:
        if _I64_MIN <= v <= _I64_MAX:
            return v
        return {TAG: "int", "v": format(v, "x")}
    if v is None or t is bool:
        return v
    if t is float:
        # NaN/inf/-0.0 are not storable; JSONB prints |v| >= 1e16 without an exponent or
        # fraction, so such floats would come back as ints: envelope them all.
        if -1e16 < v < 1e16 and (v != 0.0 or str(v)[0] != "-"):
            return v
        return {TAG: "f", "v": repr(v)}
    f = _ENC.get(t)
    if f is not None:
        return f(v, ec)
    return _enc_slow(v, ec)


def _enc_list(v: list[Any], ec: _EncCtx) -> list[Any]:
    out = []
    app = out.append
    for x in v:
        if type(x) is str and x.isascii() and "\x00" not in x:
            app(x)
        else:
            app(_enc(x, ec))
    return out


def _enc_fields(d: dict[Any, Any], ec: _EncCtx) -> dict[str, Any]:
    """Encode a dict as itself if JSON can hold its keys (JSON text keeps their order)."""
    out = {}
    for k, x in d.items():
        if type(k) is not str or k in _ESCAPED_KEYS or not _text_ok(k):
            return _enc_map(d, ec)
        if type(x) is str and x.isascii() and "\x00" not in x:
            out[k] = x
        else:
            out[k] = _enc(x, ec)
    return out


def _enc_map(d: dict[Any, Any], ec: _EncCtx) -> dict[str, Any]:
    """A dict JSON cannot hold as-is: plain keys stay inline (readable and filterable in
    SQL), the others go to ``"$m"`` as ``[key, value]`` pairs.

    ``"$o"`` gives the full key order (str: inline key, int: index in ``"$m"``) when the
    stored form would lose it: pairs interleaved with inline keys. (Before schema version
    4, snapshots on PostgreSQL were JSONB, which sorts keys, and ``"$o"`` also recorded
    the order of inline keys; decoding still honours it.)
    """
    pairs: list[list[Any]] = []
    seq: list[Any] = []
    out: dict[str, Any] = {TAG: "map"}
    interleaved = False
    for k, x in d.items():
        if type(k) is str and k not in _MAP_RESERVED and _text_ok(k):
            out[k] = _enc(x, ec)
            seq.append(k)
            interleaved = interleaved or bool(pairs)
        else:
            seq.append(len(pairs))
            pairs.append([_enc(k, ec), _enc(x, ec)])
    if pairs:
        out[MAP_PAIRS] = pairs
    if interleaved:
        out[MAP_ORDER] = seq
    return out


def _enc_serde(v: Any, ec: _EncCtx) -> dict[str, Any]:
    """Hand ``v`` whole to the serializer; stored as ``{"$t": "serde", "s": type, "b": b64}``."""
    serde = ec.serde
    if serde is None:
        raise TypeError(f"cannot encode a value of type {_qualname(type(v))} as typed JSON")
    try:
        type_str, data = serde.dumps_typed(v)
    except Exception as exc:
        raise TypeError(
            f"cannot encode a value of type {_qualname(type(v))}: "
            f"the serializer refused it ({type(exc).__name__}: {exc})"
        ) from exc
    out = {TAG: "serde", "s": _enc(type_str, _PLAIN_EC), "b": _b64(data)}
    if type_str == PICKLE:
        if ec.pickle_key is None:
            raise ConfigError(
                f"the serializer pickled a {_qualname(type(v))} (pickle_fallback): a pickle "
                "runs code when read, so the saver stores one only if it can sign it; set "
                "the saver's pickle_key to a secret of 32 random bytes, or make the value "
                "serializable without pickle"
            )
        out["k"] = _pickle_mac(ec.pickle_key, data)
    return out


PICKLE = "pickle"
"""Serializer type of a pickle: its ``serde`` envelope carries a signature ``"k"``."""
MIN_PICKLE_KEY = 16


def _pickle_mac(key: bytes, data: bytes) -> str:
    """The signature of a pickle: HMAC-SHA256 under the saver's pickle key, base64."""
    return _b64(hmac.digest(key, b"pickle\0" + data, hashlib.sha256))


def check_pickle_key(key: Any) -> bytes | None:
    """`key` if it is None or bytes of at least `MIN_PICKLE_KEY` bytes, else ConfigError."""
    if key is None:
        return None
    if not isinstance(key, bytes) or len(key) < MIN_PICKLE_KEY:
        raise ConfigError(
            f"pickle_key must be bytes, at least {MIN_PICKLE_KEY} of them (e.g. "
            f"secrets.token_bytes(32)), got {type(key).__name__}"
        )
    return key


def _seq(tag: str) -> Encoder:
    def enc(v: Any, ec: _EncCtx) -> Any:
        return {TAG: tag, "v": [_enc(x, ec) for x in v]}

    return enc


def _scalar(tag: str, to_text: Callable[[Any], str] = str) -> Encoder:
    def enc(v: Any, ec: _EncCtx) -> Any:
        return {TAG: tag, "v": _enc(to_text(v), _PLAIN_EC)}

    return enc


def _enc_deque(v: deque[Any], ec: _EncCtx) -> Any:
    out = {TAG: "deq", "v": [_enc(x, ec) for x in v]}
    if v.maxlen is not None:
        out["m"] = v.maxlen
    return out


def _tz_needs_name(tz: timezone) -> bool:
    off = tz.utcoffset(None)
    return tz.tzname(None) != timezone(off).tzname(None)


def _enc_timezone(tz: timezone, ec: _EncCtx) -> Any:
    off = tz.utcoffset(None)
    out: dict[str, Any] = {TAG: "tz", "v": off // timedelta(microseconds=1)}
    if _tz_needs_name(tz):
        out["n"] = _enc(tz.tzname(None), _PLAIN_EC)
    return out


def _tz_field(tz: Any) -> Any:
    """``"z"`` field for a tzinfo: None if not needed, _MISSING if unsupported."""
    tt = type(tz)
    if tt is timezone:
        if tz is _UTC:
            return None
        # named zones and sub-second offsets do not survive isoformat/fromisoformat
        if _tz_needs_name(tz) or tz.utcoffset(None).microseconds:
            return _enc_timezone(tz, _PLAIN_EC)
        return None
    if tt is ZoneInfo:
        key = tz.key
        if type(key) is str and _text_ok(key):
            return key
    return _MISSING


def _temporal(tag: str) -> Encoder:
    def enc(v: Any, ec: _EncCtx) -> Any:
        out: dict[str, Any] = {TAG: tag, "v": v.isoformat()}
        tz = v.tzinfo
        if tz is not None:
            z = _tz_field(tz)
            if z is _MISSING:
                return _enc_serde(v, ec)
            if z is not None:
                out["z"] = z
        if v.fold:
            out["f"] = 1
        return out

    return enc


def _enc_date(v: date, ec: _EncCtx) -> Any:
    return {TAG: "d", "v": v.isoformat()}


def _enc_timedelta(v: timedelta, ec: _EncCtx) -> Any:
    return {TAG: "td", "v": [v.days, v.seconds, v.microseconds]}


def _enc_zoneinfo(v: ZoneInfo, ec: _EncCtx) -> Any:
    if type(v.key) is not str:
        return _enc_serde(v, ec)
    return {TAG: "zi", "v": _enc(v.key, _PLAIN_EC)}


def _enc_pattern(v: re.Pattern[Any], ec: _EncCtx) -> Any:
    p = v.pattern
    out = {TAG: "re", "v": _enc(p, _PLAIN_EC)}
    if v.flags != (re.UNICODE if type(p) is str else 0):
        out["f"] = v.flags
    return out


def _enc_bytes(v: bytes, ec: _EncCtx) -> Any:
    return {TAG: "b", "v": _b64(v)}


def _enc_bytearray(v: bytearray, ec: _EncCtx) -> Any:
    return {TAG: "ba", "v": _b64(v)}


def _fixed(tag: str, fields: tuple[tuple[str, Any], ...]) -> Encoder:
    """Encoder for a fixed class: named fields at top level, defaults omitted."""

    def enc(v: Any, ec: _EncCtx) -> Any:
        out: dict[str, Any] = {TAG: tag}
        for name, default in fields:
            x = getattr(v, name, _MISSING)
            if x is _MISSING or (default is not _MISSING and _is_default(x, default)):
                continue
            out[name] = _enc(x, ec)
        return out

    return enc


# LangChain messages: {"$t": "msg", "type": <type literal>, "content": ..., <non-default fields>}
_MSG_CLASSES: dict[str, type[BaseModel]] = {}
_RemoveMessage = _lc_messages.RemoveMessage


def _message_encoder(cls: type[BaseModel]) -> Encoder:
    tname = cls.model_fields["type"].default
    opt: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if name in ("type", "content"):
            continue
        if info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        elif info.is_required():
            default = _MISSING
        else:
            default = info.default
        opt.append((name, default))
    fields = tuple(opt)
    names = frozenset(cls.model_fields)

    def enc(m: Any, ec: _EncCtx) -> Any:
        d = m.__dict__
        out: dict[str, Any] = {TAG: "msg", "type": tname}
        content = d["content"]
        if content != "" or type(content) is not str:
            out["content"] = _enc(content, ec)
        for name, default in fields:
            x = d.get(name)
            if default is _MISSING or not _is_default(x, default):
                out[name] = _enc(x, ec)
        extra = m.__pydantic_extra__
        if extra:
            for k, x in extra.items():
                if type(k) is not str or k == TAG or k in names or not _text_ok(k):
                    return _enc_serde(m, ec)
                out[k] = _enc(x, ec)
        return out

    return enc


def _register_messages() -> None:
    for name in _lc_messages.__all__:
        cls = getattr(_lc_messages, name, None)
        if (
            isinstance(cls, type)
            and issubclass(cls, _lc_messages.BaseMessage)
            and "type" in cls.model_fields
            and isinstance(cls.model_fields["type"].default, str)
        ):
            _MSG_CLASSES[cls.model_fields["type"].default] = cls
            _ENC[cls] = _message_encoder(cls)


_ENC: dict[type, Encoder] = {
    tuple: _seq("tup"),
    set: _seq("set"),
    frozenset: _seq("fset"),
    deque: _enc_deque,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    datetime: _temporal("dt"),
    time: _temporal("tm"),
    date: _enc_date,
    timedelta: _enc_timedelta,
    timezone: _enc_timezone,
    ZoneInfo: _enc_zoneinfo,
    UUID: _scalar("uuid"),
    Decimal: _scalar("dec"),
    PosixPath: _scalar("path"),
    WindowsPath: _scalar("wpath"),
    PurePosixPath: _scalar("ppath"),
    PureWindowsPath: _scalar("pwpath"),
    re.Pattern: _enc_pattern,
    IPv4Address: _scalar("ip4"),
    IPv6Address: _scalar("ip6"),
    IPv4Network: _scalar("ip4n"),
    IPv6Network: _scalar("ip6n"),
    IPv4Interface: _scalar("ip4i"),
    IPv6Interface: _scalar("ip6i"),
    Document: _fixed("doc", (("page_content", _MISSING), ("metadata", {}), ("id", None))),
    _DeltaSnapshot: _fixed("delta", (("value", _MISSING),)),
}
_register_messages()

# LangGraph classes from langgraph.types, registered on first sight so that importing
# this module does not import langgraph.types: name -> (tag, fields with defaults).
_LG_FIXED: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "Send": ("send", (("node", _MISSING), ("arg", _MISSING), ("timeout", None))),
    "Interrupt": ("intr", (("value", _MISSING), ("id", _MISSING), ("response_schema", None))),
    "Command": (
        "cmd",
        (("graph", None), ("update", None), ("resume", None), ("goto", ())),
    ),
    "TimeoutPolicy": (
        "tpol",
        (("run_timeout", None), ("idle_timeout", None), ("refresh_on", "auto")),
    ),
}
_LG_TAGS = {tag: (name, fields) for name, (tag, fields) in _LG_FIXED.items()}


def _class_ref(t: type) -> str | None:
    """``"module:qualname"`` of ``t`` if that path resolves back to ``t``, else None."""
    mod, qual = t.__module__, t.__qualname__
    obj: Any = sys.modules.get(mod)
    for part in qual.split("."):
        try:
            obj = vars(obj).get(part)
        except TypeError:
            return None
    if obj is not t or not _text_ok(mod) or not _text_ok(qual):
        return None
    return f"{mod}:{qual}"


def _enc_enum(ref: str) -> Encoder:
    def enc(v: Any, ec: _EncCtx) -> Any:
        return {TAG: "enum", "c": ref, "v": _enc(v.value, ec)}

    return enc


def _enc_namedtuple(ref: str) -> Encoder:
    def enc(v: Any, ec: _EncCtx) -> Any:
        return {TAG: "nt", "c": ref, "v": [_enc(x, ec) for x in v]}

    return enc


def _enc_dataclass(t: type, ref: str) -> Encoder:
    fields = tuple(
        (f.name, f.default if f.default is not dataclasses.MISSING else _MISSING)
        for f in dataclasses.fields(t)
    )

    def enc(v: Any, ec: _EncCtx) -> Any:
        out: dict[str, Any] = {}
        for name, default in fields:
            x = getattr(v, name, _MISSING)
            if x is _MISSING or x is default:
                continue
            out[name] = _enc(x, ec)
        return {TAG: "dc", "c": ref, "v": out}

    return enc


def _pydantic_encoder(tag: str, ref: str, defaults: dict[str, Any], v1: bool) -> Encoder:
    """Encoder for pydantic models: all field values, minus unset fields still at default.

    ``"u"`` lists the stored names that were not in the model's fields-set.
    """

    def enc(m: Any, ec: _EncCtx) -> Any:
        if v1:
            fields_set = m.__fields_set__
            items: Any = m.__dict__.items()
        else:
            fields_set = m.__pydantic_fields_set__
            items = m.__dict__.items()
            extra = m.__pydantic_extra__
            if extra:
                items = [*items, *extra.items()]
        values: dict[str, Any] = {}
        unset: list[str] = []
        for name, x in items:
            if name not in fields_set:
                if x is defaults.get(name, _MISSING):
                    continue
                unset.append(name)
            values[name] = x
        out = {TAG: tag, "c": ref, "v": _enc_fields(values, ec)}
        if unset:
            out["u"] = unset
        return out

    return enc


def _kind_encoder(t: type) -> Encoder | None:
    """Encoder for a type not in the exact-type table, or None (-> ec)."""
    if t.__module__ == "langgraph.types" and t.__name__ in _LG_FIXED:
        lg = sys.modules.get("langgraph.types")
        if lg is not None and vars(lg).get(t.__name__) is t:
            tag, fields = _LG_FIXED[t.__name__]
            return _fixed(tag, fields)
    if issubclass(t, Enum):
        ref = _class_ref(t)
        return _enc_enum(ref) if ref else None
    if issubclass(t, BaseModel):
        ref = _class_ref(t)
        if not ref:
            return None
        defaults = {
            n: f.default
            for n, f in t.model_fields.items()
            if f.default_factory is None and not f.is_required()
        }
        return _pydantic_encoder("pyd", ref, defaults, v1=False)
    pv1 = sys.modules.get("pydantic.v1")
    if pv1 is not None and issubclass(t, pv1.BaseModel):
        ref = _class_ref(t)
        if not ref:
            return None
        defaults = {
            n: f.default
            for n, f in t.__fields__.items()
            if f.default_factory is None and not f.required
        }
        return _pydantic_encoder("pyd1", ref, defaults, v1=True)
    if dataclasses.is_dataclass(t):
        ref = _class_ref(t)
        return _enc_dataclass(t, ref) if ref else None
    if issubclass(t, tuple) and isinstance(getattr(t, "_fields", None), tuple):
        ref = _class_ref(t)
        return _enc_namedtuple(ref) if ref else None
    return None


def _enc_slow(v: Any, ec: _EncCtx) -> Any:
    t = type(v)
    f = _kind_encoder(t) or _enc_serde
    if len(_ENC) < _ENC_CACHE_CAP:
        _ENC[t] = f
    return f(v, ec)


# --------------------------------------------------------------------------- decoding


class _Ctx:
    """Decoding context: the serializer (for ``serde`` envelopes) and the class policy.

    ``allowed``: True (classes whose module is already imported), a frozenset of
    ``(module, name)`` (only those; may import), or None (fixed built-ins only).
    """

    __slots__ = (
        "active",
        "allowed",
        "classes",
        "jsonplus",
        "max_expansion",
        "modules",
        "pickle_key",
        "refs",
        "serde",
    )

    def __init__(
        self,
        serde: SerializerProtocol | None,
        allowed: Any,
        pickle_key: bytes | None = None,
        max_expansion: int = 0,
    ) -> None:
        self.serde = serde
        self.max_expansion = max_expansion  # see ValueCache
        self.pickle_key = pickle_key  # pickles are revived only with a valid signature
        self.refs: ValueCache | None = None  # resolves {"$r": h} and {"$s": h} when set
        self.active: set[str] = set()  # stored values being decoded (a cycle is an error)
        # does a "msgpack" payload reach JsonPlusSerializer (maybe wrapped, e.g. encrypted)?
        self.jsonplus = isinstance(serde, JsonPlusSerializer) or isinstance(
            getattr(serde, "serde", None), JsonPlusSerializer
        )
        if allowed is True:
            self.allowed: Any = True
            self.modules: frozenset[str] = frozenset()
        elif allowed:
            keys = set()
            for k in allowed:
                if isinstance(k, type):
                    keys.add((k.__module__, k.__name__))
                else:
                    keys.add(tuple(k))
            self.allowed = frozenset(keys)
            self.modules = frozenset(k[0] for k in keys if k)
        else:
            self.allowed = None
            self.modules = frozenset()
        self.classes: dict[tuple[str, str], type] = {}  # (tag, "module:qualname") -> class

    def resolving(self, refs: ValueCache) -> _Ctx:
        """This context, resolving references through `refs`."""
        ctx = object.__new__(_Ctx)
        for name in _Ctx.__slots__:
            object.__setattr__(ctx, name, getattr(self, name))
        ctx.refs = refs
        ctx.active = set()
        return ctx


def _policy_of(serde: Any) -> Any:
    """The serde's ``_allowed_msgpack_modules`` (also looked up on a wrapped ``.serde``)."""
    for s in (serde, getattr(serde, "serde", None)):
        if s is not None and "_allowed_msgpack_modules" in getattr(s, "__dict__", {}):
            return s._allowed_msgpack_modules
    return None


def _get(x: dict[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    try:
        v = x[key]
    except KeyError:
        raise DecodeError(f"{x[TAG]!r} envelope is missing {key!r}") from None
    if not isinstance(v, typ) or (type(v) is bool and typ is not bool):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise DecodeError(
            f"{x[TAG]!r} envelope field {key!r} must be {name}, got {type(v).__name__}"
        )
    return v


def _get_text(x: dict[str, Any], key: str, ctx: _Ctx) -> str:
    v = x.get(key, _MISSING)
    if type(v) is str:
        return v
    if type(v) is dict and v.get(TAG) == "s":
        return _dec_str(v, ctx)
    if v is _MISSING:
        raise DecodeError(f"{x[TAG]!r} envelope is missing {key!r}")
    raise DecodeError(f"{x[TAG]!r} envelope field {key!r} must be a string")


def _get_b64(x: dict[str, Any], key: str) -> bytes:
    v = _get(x, key, str)
    try:
        return base64.b64decode(v, validate=True)
    except ValueError as exc:
        raise DecodeError(f"{x[TAG]!r} envelope field {key!r} is not valid base64") from exc


def _dec(x: Any, ctx: _Ctx) -> Any:
    """Decode one tree node."""
    t = type(x)
    if t is str or t is int or t is float or t is bool or x is None:
        return x
    if t is list:
        if ctx.refs is not None:
            return ctx.refs.items(x, ctx)
        return [
            i if (ti := type(i)) is str or ti is int or ti is float else _dec(i, ctx) for i in x
        ]
    if t is dict:
        if TAG in x:
            return _dec_env(x, ctx)
        if ctx.refs is not None and len(x) == 1 and REF in x:
            return ctx.refs.value(x[REF], ctx)
        out = {}
        for k, v in x.items():
            tv = type(v)
            out[k] = v if tv is str or tv is int or tv is float else _dec(v, ctx)
        return out
    raise DecodeError(f"tree holds a non-JSON value of type {_qualname(t)}")


def _dec_env(x: dict[str, Any], ctx: _Ctx) -> Any:
    tag = x[TAG]
    handler = _DEC.get(tag) if type(tag) is str else None
    if handler is None:
        raise DecodeError(f"unknown type tag {tag!r}")
    try:
        return handler(x, ctx)
    except (DecodeError, RecursionError):
        raise
    except Exception as exc:
        raise DecodeError(f"invalid {tag!r} envelope: {type(exc).__name__}: {exc}") from exc


def _dec_list(x: dict[str, Any], ctx: _Ctx) -> list[Any]:
    return _dec(_get(x, "v", list), ctx)


def _dec_str(x: dict[str, Any], ctx: _Ctx) -> str:
    parts = _get(x, "v", list)
    out = []
    for p in parts:
        if type(p) is str:
            out.append(p)
        elif type(p) is int:
            out.append(chr(p))
        else:
            raise DecodeError("'s' envelope parts must be strings or code points")
    return "".join(out)


def _dec_int(x: dict[str, Any], ctx: _Ctx) -> int:
    return int(_get(x, "v", str), 16)


def _dec_float(x: dict[str, Any], ctx: _Ctx) -> float:
    return float(_get(x, "v", str))


def _dec_map(x: dict[str, Any], ctx: _Ctx) -> dict[Any, Any]:
    inline = _kwargs(x, ctx, _MAP_RESERVED)
    pairs = []
    for pair in _get(x, MAP_PAIRS, list) if MAP_PAIRS in x else ():
        if type(pair) is not list or len(pair) != 2:
            raise DecodeError("'map' envelope entries must be [key, value] pairs")
        pairs.append((_dec(pair[0], ctx), _dec(pair[1], ctx)))
    if MAP_ORDER not in x:
        inline.update(pairs)
        return inline
    order = _get(x, MAP_ORDER, list)
    names = [k for k in order if type(k) is str]
    indexes = sorted(k for k in order if type(k) is int)
    if (
        len(names) + len(indexes) != len(order)
        or len(names) != len(inline)
        or set(names) != inline.keys()
        or indexes != list(range(len(pairs)))
    ):
        raise DecodeError("'map' envelope key order '$o' does not match its keys")
    out = {}
    for k in order:
        if type(k) is str:
            out[k] = inline[k]
        else:
            key, value = pairs[k]
            out[key] = value
    return out


def _dec_deque(x: dict[str, Any], ctx: _Ctx) -> deque[Any]:
    maxlen = _get(x, "m", int) if "m" in x else None
    return deque(_dec_list(x, ctx), maxlen)


def _dec_tzinfo(z: Any, ctx: _Ctx) -> Any:
    if type(z) is str:
        return ZoneInfo(z)
    if type(z) is dict and z.get(TAG) == "tz":
        return _dec_timezone(z, ctx)
    raise DecodeError("time zone field 'z' must be a zone key or a 'tz' envelope")


def _dec_temporal(parse: Callable[[str], Any]) -> Callable[[dict[str, Any], _Ctx], Any]:
    def dec(x: dict[str, Any], ctx: _Ctx) -> Any:
        v = parse(_get(x, "v", str))
        if "z" in x:
            v = v.replace(tzinfo=_dec_tzinfo(x["z"], ctx))
        if "f" in x:
            v = v.replace(fold=_get(x, "f", int))
        return v

    return dec


def _dec_timedelta(x: dict[str, Any], ctx: _Ctx) -> timedelta:
    v = _get(x, "v", list)
    if len(v) != 3 or any(type(i) is not int for i in v):
        raise DecodeError("'td' envelope needs [days, seconds, microseconds] ints")
    return timedelta(days=v[0], seconds=v[1], microseconds=v[2])


def _dec_timezone(x: dict[str, Any], ctx: _Ctx) -> timezone:
    off = timedelta(microseconds=_get(x, "v", int))
    if "n" in x:
        return timezone(off, _get_text(x, "n", ctx))
    return timezone(off)


def _dec_text_ctor(ctor: Callable[[str], Any]) -> Callable[[dict[str, Any], _Ctx], Any]:
    def dec(x: dict[str, Any], ctx: _Ctx) -> Any:
        return ctor(_get_text(x, "v", ctx))

    return dec


def _dec_pattern(x: dict[str, Any], ctx: _Ctx) -> re.Pattern[Any]:
    v = x.get("v")
    pattern = _dec(v, ctx) if type(v) is dict else v
    if type(pattern) not in (str, bytes):
        raise DecodeError("'re' envelope field 'v' must be a str or bytes pattern")
    flags = _get(x, "f", int) if "f" in x else 0
    return re.compile(pattern, flags)


def _dec_serde(x: dict[str, Any], ctx: _Ctx) -> Any:
    if ctx.serde is None:
        raise DecodeError("'serde' envelope found but no serializer is available")
    type_str = _get_text(x, "s", ctx)
    data = _get_b64(x, "b")
    if type_str == PICKLE:
        _check_pickle(x, data, ctx)
    elif type_str == "msgpack" and ctx.jsonplus:
        _guard_msgpack(data, ctx)
    return ctx.serde.loads_typed((type_str, data))


def _check_pickle(x: dict[str, Any], data: bytes, ctx: _Ctx) -> None:
    """Refuse a pickle this saver did not sign (unpickling runs whatever it names)."""
    if ctx.pickle_key is None:
        raise UnsafeTypeError("pickle refused: the saver has no pickle_key to check it with")
    mac = x.get("k")
    if type(mac) is not str or not hmac.compare_digest(mac, _pickle_mac(ctx.pickle_key, data)):
        raise UnsafeTypeError("pickle refused: its signature does not match the pickle_key")


# JsonPlusSerializer msgpack extensions: codes whose payload is (module, name, ...) and
# names a class it will import and call, and codes whose payload may nest other extensions.
_EXT_CLASS_CODES = frozenset({0, 1, 2, 4, 5})
_EXT_NESTING_CODES = frozenset({0, 1, 2, 3, 4, 5, 7})
_SAFE_VALUE_BASES = (
    str,
    bytes,
    bytearray,
    int,
    float,
    tuple,
    list,
    dict,
    set,
    frozenset,
    deque,
    PurePosixPath,
    PureWindowsPath,
    UUID,
    Decimal,
    date,
    time,
    timedelta,
    timezone,
    IPv4Address,
    IPv6Address,
    IPv4Network,
    IPv6Network,
    IPv4Interface,
    IPv6Interface,
    SecretStr,
    SecretBytes,
)


def _serde_class_ok(obj: Any) -> bool:
    """A class JsonPlusSerializer may construct under the permissive policy."""
    return isinstance(obj, type) and (
        issubclass(obj, _SAFE_VALUE_BASES)
        or _is_enum(obj)
        or _is_dataclass(obj)
        or _is_pydantic(obj)
        or _is_pydantic_v1(obj)
    )


def _check_serde_class(tup: Any, ctx: _Ctx) -> None:
    if not (type(tup) is list and len(tup) >= 3 and type(tup[0]) is str and type(tup[1]) is str):
        raise DecodeError("'serde' envelope holds a malformed msgpack class extension")
    mod, name = tup[0], tup[1]
    if (mod, name) in _LG_SAFE:
        return
    allowed = ctx.allowed
    if allowed is True:
        module = sys.modules.get(mod)
        if module is None:
            raise UnsafeTypeError(
                f"serialized class {mod}.{name} refused: module {mod!r} is not imported"
            )
        namespace = getattr(module, "__dict__", {})
        obj = namespace.get(name, _MISSING)
        if obj is _MISSING and "__getattr__" not in namespace:
            return  # the serde cannot find it either and keeps the raw payload
        if not _serde_class_ok(obj):
            raise UnsafeTypeError(f"serialized {mod}.{name} is not a revivable class")
    elif not allowed or (mod, name) not in allowed:
        raise UnsafeTypeError(f"serialized class {mod}.{name} is not on the decoding allowlist")


def _guard_msgpack(data: bytes, ctx: _Ctx) -> None:
    """Check every class a JsonPlusSerializer msgpack payload names, before the serde runs.

    In its permissive mode the serde imports any module and calls any callable named in
    the data; here such a payload gets the same policy as typed envelopes instead.
    """
    refused: list[DecodeError] = []

    def hook(code: int, payload: bytes) -> None:
        if not refused and code in _EXT_NESTING_CODES:
            tup = ormsgpack.unpackb(payload, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
            if code in _EXT_CLASS_CODES and not refused:
                try:
                    _check_serde_class(tup, ctx)
                except DecodeError as exc:
                    refused.append(exc)
        return None

    try:
        ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
    except Exception as exc:
        if refused:
            raise refused[0] from None
        raise DecodeError(f"'serde' envelope holds malformed msgpack: {exc}") from exc
    if refused:
        raise refused[0]


def _kwargs(x: dict[str, Any], ctx: _Ctx, skip: tuple[str, ...] = (TAG,)) -> dict[str, Any]:
    return {
        k: v if (t := type(v)) is str or t is int or t is float else _dec(v, ctx)
        for k, v in x.items()
        if k not in skip
    }


def _dec_message(x: dict[str, Any], ctx: _Ctx) -> Any:
    mtype = x.get("type")
    cls = _MSG_CLASSES.get(mtype) if type(mtype) is str else None
    if cls is None:
        raise DecodeError(f"'msg' envelope has unknown message type {x.get('type')!r}")
    kw = _kwargs(x, ctx, (TAG, "type"))
    if cls is not _RemoveMessage:
        kw.setdefault("content", "")
    return cls(**kw)


def _fixed_decoder(
    tag: str, get_cls: Callable[[], type], fields: tuple[tuple[str, Any], ...]
) -> Callable[[dict[str, Any], _Ctx], Any]:
    names = frozenset(n for n, _ in fields)
    required = tuple(n for n, d in fields if d is _MISSING)

    def dec(x: dict[str, Any], ctx: _Ctx) -> Any:
        for k in x:
            if k not in names and k != TAG:
                raise DecodeError(f"{tag!r} envelope has unknown field {k!r}")
        for k in required:
            if k not in x:
                raise DecodeError(f"{tag!r} envelope is missing {k!r}")
        return get_cls()(**_kwargs(x, ctx))

    return dec


def _lg_class(name: str) -> Callable[[], type]:
    def get() -> type:
        try:
            module = importlib.import_module("langgraph.types")
        except ImportError as exc:
            raise DecodeError(f"reviving {name} needs the langgraph package") from exc
        return vars(module)[name]

    return get


# ---- user classes (enum, dataclass, namedtuple, pydantic)


def _is_enum(c: type) -> bool:
    return issubclass(c, Enum)


def _is_dataclass(c: type) -> bool:
    return dataclasses.is_dataclass(c)


def _is_namedtuple(c: type) -> bool:
    return issubclass(c, tuple) and isinstance(getattr(c, "_fields", None), tuple)


def _is_pydantic(c: type) -> bool:
    return issubclass(c, BaseModel)


def _is_pydantic_v1(c: type) -> bool:
    pv1 = sys.modules.get("pydantic.v1")
    return pv1 is not None and issubclass(c, pv1.BaseModel)


_KINDS: dict[str, tuple[str, Callable[[type], bool]]] = {
    "enum": ("an Enum", _is_enum),
    "dc": ("a dataclass", _is_dataclass),
    "nt": ("a namedtuple", _is_namedtuple),
    "pyd": ("a pydantic model", _is_pydantic),
    "pyd1": ("a pydantic v1 model", _is_pydantic_v1),
}


def _resolve(x: dict[str, Any], ctx: _Ctx) -> type:
    """Resolve the ``"c"`` class reference of a user-class envelope under the policy."""
    tag = x[TAG]
    ref = _get(x, "c", str)
    mod, _, qual = ref.partition(":")
    parts = qual.split(".")
    if not all(p.isidentifier() for p in mod.split(".")) or not all(
        p.isidentifier() for p in parts
    ):
        raise DecodeError(f"{tag!r} envelope has a malformed class reference {ref!r}")
    key = (mod, qual)
    cls = ctx.classes.get((tag, ref))
    if cls is not None:
        return cls
    name = parts[-1]
    builtin = key in _LG_SAFE or (mod, name) in _LG_SAFE
    allowed = ctx.allowed
    if builtin or (type(allowed) is frozenset and mod in ctx.modules):
        if not builtin and key not in allowed and (mod, name) not in allowed:
            raise UnsafeTypeError(f"class {ref!r} is not in allowed_msgpack_modules")
        module = sys.modules.get(mod)
        if module is None:
            try:
                module = importlib.import_module(mod)
            except Exception as exc:
                raise DecodeError(f"cannot import module {mod!r} for {ref!r}") from exc
    elif allowed is True:
        module = sys.modules.get(mod)
        if module is None:
            raise UnsafeTypeError(
                f"class {ref!r} refused: module {mod!r} is not imported "
                "(decoding never imports modules in permissive mode)"
            )
    else:
        raise UnsafeTypeError(f"class {ref!r} is not on the decoding allowlist")
    obj: Any = module
    for part in parts:
        try:
            obj = vars(obj).get(part, _MISSING)
        except TypeError:
            obj = _MISSING
        if obj is _MISSING:
            raise DecodeError(f"class {ref!r} not found")
    what, check = _KINDS[tag]
    if not isinstance(obj, type) or not check(obj):
        raise UnsafeTypeError(f"{ref!r} is not {what}; refusing to revive it")
    if obj.__module__ != mod or obj.__qualname__ != qual:
        raise UnsafeTypeError(f"{ref!r} is an alias of {_qualname(obj)}; refusing it")
    ctx.classes[(tag, ref)] = obj
    return obj


def _dec_enum(x: dict[str, Any], ctx: _Ctx) -> Any:
    cls = _resolve(x, ctx)
    if "v" not in x:
        raise DecodeError("'enum' envelope is missing 'v'")
    return cls(_dec(x["v"], ctx))


def _dec_namedtuple(x: dict[str, Any], ctx: _Ctx) -> Any:
    cls = _resolve(x, ctx)
    values = _dec_list(x, ctx)
    if len(values) != len(cls._fields):  # type: ignore[attr-defined]
        raise DecodeError(f"'nt' envelope for {x['c']!r} has {len(values)} values")
    return tuple.__new__(cls, values)


def _dec_fields(x: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    values = _dec(_get(x, "v", dict), ctx)
    if type(values) is not dict or any(type(k) is not str for k in values):
        raise DecodeError(f"{x[TAG]!r} envelope field 'v' must map names to values")
    return values


def _dec_dataclass(x: dict[str, Any], ctx: _Ctx) -> Any:
    cls = _resolve(x, ctx)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = _dec_fields(x, ctx)
    for k in values:
        if k not in fields:
            raise DecodeError(f"'dc' envelope for {x['c']!r} has unknown field {k!r}")
    try:
        obj = cls(**{k: v for k, v in values.items() if fields[k].init})
    except TypeError:  # e.g. a required InitVar: rebuild field by field instead
        obj = object.__new__(cls)
        for k, f in fields.items():  # fields omitted because they held their default
            if k not in values:
                if f.default is not dataclasses.MISSING:
                    object.__setattr__(obj, k, f.default)
                elif f.default_factory is not dataclasses.MISSING:
                    object.__setattr__(obj, k, f.default_factory())
    for k, v in values.items():
        if getattr(obj, k, _MISSING) is not v:
            object.__setattr__(obj, k, v)
    return obj


def _dec_pydantic(x: dict[str, Any], ctx: _Ctx) -> Any:
    cls: Any = _resolve(x, ctx)
    values = _dec_fields(x, ctx)
    unset = _get(x, "u", list) if "u" in x else ()
    fields_set = set(values).difference(unset)
    if x[TAG] == "pyd1":
        return cls.construct(_fields_set=fields_set, **values)
    return cls.model_construct(_fields_set=fields_set, **values)


_DEC: dict[str, Callable[[dict[str, Any], _Ctx], Any]] = {
    "s": _dec_str,
    "int": _dec_int,
    "f": _dec_float,
    "map": _dec_map,
    "tup": lambda x, ctx: tuple(_dec_list(x, ctx)),
    "set": lambda x, ctx: set(_dec_list(x, ctx)),
    "fset": lambda x, ctx: frozenset(_dec_list(x, ctx)),
    "deq": _dec_deque,
    "b": lambda x, ctx: _get_b64(x, "v"),
    "ba": lambda x, ctx: bytearray(_get_b64(x, "v")),
    "dt": _dec_temporal(datetime.fromisoformat),
    "tm": _dec_temporal(time.fromisoformat),
    "d": lambda x, ctx: date.fromisoformat(_get(x, "v", str)),
    "td": _dec_timedelta,
    "tz": _dec_timezone,
    "zi": _dec_text_ctor(ZoneInfo),
    "uuid": _dec_text_ctor(UUID),
    "dec": _dec_text_ctor(Decimal),
    "path": _dec_text_ctor(Path),
    "wpath": _dec_text_ctor(WindowsPath),
    "ppath": _dec_text_ctor(PurePosixPath),
    "pwpath": _dec_text_ctor(PureWindowsPath),
    "re": _dec_pattern,
    "ip4": _dec_text_ctor(IPv4Address),
    "ip6": _dec_text_ctor(IPv6Address),
    "ip4n": _dec_text_ctor(IPv4Network),
    "ip6n": _dec_text_ctor(IPv6Network),
    "ip4i": _dec_text_ctor(IPv4Interface),
    "ip6i": _dec_text_ctor(IPv6Interface),
    "serde": _dec_serde,
    "msg": _dec_message,
    "doc": _fixed_decoder(
        "doc", lambda: Document, (("page_content", _MISSING), ("metadata", {}), ("id", None))
    ),
    "delta": _fixed_decoder("delta", lambda: _DeltaSnapshot, (("value", _MISSING),)),
    "enum": _dec_enum,
    "dc": _dec_dataclass,
    "nt": _dec_namedtuple,
    "pyd": _dec_pydantic,
    "pyd1": _dec_pydantic,
}
for _tag, (_name, _fields) in _LG_TAGS.items():
    _DEC[_tag] = _fixed_decoder(_tag, _lg_class(_name), _fields)


def _decode(tree: Any, ctx: _Ctx) -> Any:
    try:
        return _dec(tree, ctx)
    except RecursionError as exc:
        raise DecodeError("tree is nested too deeply to decode") from exc


# --------------------------------------------------------------------------- references

MAX_EXPANSION = 4 << 20
"""Default of the characters of JSON that stored values used more than once may add to a
checkpoint being read, beyond `EXPANSION_RATIO` times what it stores (see `ValueCache`)."""
EXPANSION_RATIO = 16


class ValueCache:
    """Stored values (hash -> JSON tree) that references in a tree resolve to.

    Each value is decoded once, however many snapshots (and reads) use it, and every use
    gets its own copy (see `fresh`): a caller mutating one snapshot never changes another.
    With `shared=False` the cache serves one decoding only (one snapshot): the first use
    of a value then gets the decoded object itself. Values missing from `trees` are
    parsed from their JSON text in `raw`, when given, on first use.

    Expansion is bounded: a snapshot's first use of a value counts its expanded size
    (characters of JSON) as `fresh`, each further use adds it to `spent`, and when `spent`
    exceeds the codec's `max_expansion` plus `EXPANSION_RATIO` times `fresh`, decoding
    stops with a DecodeError before making the copies: stored values referring to each
    other twice would otherwise expand exponentially. `begin` starts a new snapshot.
    """

    __slots__ = (
        "_grown",
        "_held",
        "_quiet",
        "_runs",
        "_seen",
        "_sizes",
        "_values",
        "fresh",
        "raw",
        "shared",
        "spent",
        "trees",
    )

    def __init__(
        self,
        trees: dict[str, Any] | None = None,
        *,
        shared: bool = True,
        raw: Mapping[str, str] | None = None,
    ) -> None:
        self.shared = shared
        self.raw = raw
        self.trees: dict[str, Any] = trees if trees is not None else {}
        # {"$r": h} -> (value, copier); {"$s": h} -> its items as (value or hash, copier)
        self._values: dict[str, tuple[Any, Any]] = {}
        self._runs: dict[str, list[tuple[Any, Any]]] = {}
        self._sizes: dict[str, int] = {}  # hash -> characters of JSON it expands to
        self._seen: set[str] = set()  # hashes the current snapshot used
        self.fresh = 0  # characters the current snapshot's first uses expand to
        self.spent = 0  # characters its repeated uses add
        self._grown = 0  # characters expanded so far (measures `_sizes`)
        self._held = 0  # > 0 while re-emitting a decoded run: `_grown` already counted it
        self._quiet = 0  # > 0 while re-emitting a run charged whole

    def begin(self) -> None:
        """Start decoding a new snapshot: every value's next use is its first."""
        self._seen.clear()
        self.fresh = self.spent = 0

    def _enter(self, h: Any, ctx: _Ctx) -> Any:
        """The tree stored under `h`, being decoded until `ctx.active` drops it."""
        if type(h) is not str:
            raise DecodeError(f"stored value {h!r} is missing")
        raw = self.raw
        text = raw.get(h) if raw is not None else None
        tree = self.trees.get(h, _MISSING)
        if tree is _MISSING:
            if text is None:
                raise MissingValueError(f"stored value {h!r} is missing")
            try:
                tree = self.trees[h] = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(f"stored value {h!r} is not valid JSON: {exc}") from exc
        if h in ctx.active:
            raise DecodeError(f"stored value {h!r} refers to itself")
        ctx.active.add(h)
        self._seen.add(h)
        if not self._held:
            size = len(text) if text is not None else len(orjson.dumps(tree))
            self._grown += size
            self.fresh += size
        return tree

    def _repeat(self, size: int, ctx: _Ctx) -> None:
        """Charge the repeated use of a value or run of `size` characters of JSON."""
        self.spent += size
        if self.spent > ctx.max_expansion + EXPANSION_RATIO * self.fresh:
            raise DecodeError(
                f"stored values expand beyond the limit: values used more than once add "
                f"{self.spent} characters of JSON to a checkpoint of {self.fresh}, over "
                f"max_expansion ({ctx.max_expansion}) plus {EXPANSION_RATIO} times that"
            )

    def value(self, h: Any, ctx: _Ctx) -> Any:
        """The value ``{"$r": h}`` stands for."""
        done = self._values.get(h) if type(h) is str else None
        if done is None:
            start = self._grown
            tree = self._enter(h, ctx)
            try:
                v = _dec(tree, ctx)
            finally:
                ctx.active.discard(h)
            self._sizes[h] = self._grown - start
            done = self._values[h] = (v, _plan(v, self.shared))
            if not self.shared:
                return v
        else:  # no value is decoded while a run is re-emitted: not held, not quiet
            size = self._sizes[h]
            self._grown += size
            if h in self._seen:
                self._repeat(size, ctx)
            else:
                self._seen.add(h)
                self.fresh += size
        v, copy = done
        if copy is _UNPLANNED:
            copy = copier(v)
            self._values[h] = (v, copy)
        return v if copy is None else copy()

    def items(self, x: list[Any], ctx: _Ctx) -> list[Any]:
        """Decode a list, splicing in the items its ``{"$s": h}`` entries stand for."""
        out: list[Any] = []
        for i in x:
            ti = type(i)
            if ti is str or ti is int or ti is float:
                out.append(i)
            elif ti is dict and len(i) == 1 and SPLICE in i:
                self._splice(i[SPLICE], ctx, out)
            else:
                out.append(_dec(i, ctx))
        return out

    def _splice(self, h: Any, ctx: _Ctx, out: list[Any]) -> None:
        """Append the items of run `h` to `out`: copies, unless this (unshared) cache
        decodes them now."""
        parts = self._runs.get(h) if type(h) is str else None
        hit = parts is not None
        charged = first = False
        if hit:  # a run decoded before: counted whole here, so not its parts again
            if not self._quiet:  # else inside a run charged whole
                size = self._sizes.get(h, 0)
                charged = h in self._seen
                if charged:
                    self._repeat(size, ctx)
                else:
                    self._seen.add(h)
                if not self._held:
                    self._grown += size
                    if not charged:
                        self.fresh += size
            self._held += 1
            self._quiet += charged
        else:
            start = self._grown
            tree = self._enter(h, ctx)
            try:
                if type(tree) is not list:
                    raise DecodeError(f"stored run {h!r} is not a list")
                parts = self._runs[h] = [
                    (i[SPLICE], _SPLICED)
                    if type(i) is dict and len(i) == 1 and SPLICE in i
                    else ((v := _dec(i, ctx)), _plan(v, self.shared))
                    for i in tree
                ]
            finally:
                ctx.active.discard(h)
            first = not self.shared
        assert parts is not None
        try:
            if h in ctx.active:
                raise DecodeError(f"stored value {h!r} refers to itself")
            ctx.active.add(h)
            try:
                for j, (v, copy) in enumerate(parts):
                    if copy is _SPLICED:
                        self._splice(v, ctx, out)
                    elif first or copy is None:
                        out.append(v)
                    else:
                        if copy is _UNPLANNED:
                            copy = copier(v)
                            parts[j] = (v, copy)
                        out.append(v if copy is None else copy())
            finally:
                ctx.active.discard(h)
        finally:
            if hit:
                self._held -= 1
                self._quiet -= charged
        if not hit:
            self._sizes[h] = self._grown - start


# Markers in place of a copier: a part of a run that is a run itself; a value whose
# copier is made when it is used a second time (by caches serving one decoding).
_SPLICED: Any = object()
_UNPLANNED: Any = object()


def _plan(v: Any, shared: bool) -> Any:
    return copier(v) if shared else _UNPLANNED


# --------------------------------------------------------------------------- public API


class JsonCodec:
    """Encode checkpoint values to JSON-compatible trees and back.

    ``native`` is True when ``serde`` is a ``JsonPlusSerializer``: values use the typed
    JSON encoding and the serde only handles unknown types. Otherwise every value passed
    to :meth:`encode` goes whole through ``serde.dumps_typed`` (so e.g. encrypted state is
    never stored as plain JSON).
    """

    __slots__ = ("_ctx", "_ec", "_plain", "native", "serde")

    def __init__(
        self,
        serde: SerializerProtocol,
        *,
        pickle_key: bytes | None = None,
        max_expansion: int = MAX_EXPANSION,
    ) -> None:
        self.serde = serde
        self.native: bool = isinstance(serde, JsonPlusSerializer)
        pickle_key = check_pickle_key(pickle_key)
        if (
            not isinstance(max_expansion, int)
            or isinstance(max_expansion, bool)
            or max_expansion < 0
        ):
            raise ConfigError(
                f"max_expansion must be an int of characters >= 0, got {max_expansion!r}"
            )
        self._ec = _EncCtx(serde, pickle_key)
        policy = _policy_of(serde)
        self._ctx = _Ctx(serde, policy, pickle_key, max_expansion)
        self._plain = _Ctx(None, policy)

    def encode(self, value: Any) -> Any:
        """Return the JSON-compatible tree for ``value``."""
        if self.native:
            return _enc(value, self._ec)
        return _enc_serde(value, self._ec)

    def decode(self, tree: Any, refs: ValueCache | None = None) -> Any:
        """Revive a tree made by :meth:`encode`; DecodeError if it is malformed.

        With `refs`, ``{"$r": h}`` and ``{"$s": h}`` resolve to the stored values it holds.
        """
        if refs is None:
            return _decode(tree, self._ctx)
        return _decode(tree, self._ctx.resolving(refs))

    def decode_plain(self, tree: Any) -> Any:
        """Revive a tree made by :func:`encode_plain` (metadata, versions) under this
        codec's class policy."""
        return _decode(tree, self._plain)

    def dumps(self, value: Any) -> bytes:
        """``encode`` then serialize to JSON bytes."""
        return orjson.dumps(self.encode(value))

    def loads(self, data: bytes | str) -> Any:
        """Parse JSON bytes/str and ``decode`` them."""
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"stored value is not valid JSON: {exc}") from exc
        return _decode(tree, self._ctx)


_PLAIN_CTX = _Ctx(None, None if _LG_STRICT else True)


def encode_plain(value: Any) -> Any:
    """Typed JSON encoding without any serializer (TypeError for unsupported types)."""
    return _enc(value, _PLAIN_EC)


def decode_plain(tree: Any, *, allowed_modules: Any = _MISSING) -> Any:
    """Inverse of :func:`encode_plain`.

    ``allowed_modules`` is the user-class policy, as for ``JsonPlusSerializer``:
    True (default unless ``LANGGRAPH_STRICT_MSGPACK`` is set) allows classes whose
    module is already imported, an iterable of ``(module, name)`` allows just those,
    None allows the fixed built-in types only.
    """
    ctx = _PLAIN_CTX if allowed_modules is _MISSING else _Ctx(None, allowed_modules)
    return _decode(tree, ctx)
