"""Decoding: JSON-compatible trees back to Python values, under the revival policy.

Envelopes dispatch on their tag through `DECODERS`, derived from the type table at
import. Every malformed tree is a DecodeError (UnsafeTypeError for what the policy
refuses); references to stored values resolve through a `refs.ValueCache`.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import re
from collections import deque
from collections.abc import Callable, Collection
from datetime import date, timedelta, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from langchain_core.messages import RemoveMessage
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..errors import DecodeError
from .messages import builder
from .policy import PICKLE, RevivalPolicy, reaches_jsonplus
from .syntax import MAP_ORDER, MAP_PAIRS, MAP_RESERVED, MISSING, REF, TAG, qualname
from .table import MESSAGE, ROWS, TIMEZONE, UNSTORABLE_STR, Envelope, Form

_STR, _TZ = UNSTORABLE_STR.tag, TIMEZONE.tag

Decoder = Callable[[dict[str, Any], "DecodeContext"], Any]


class References(Protocol):
    """Where references to stored values resolve (`refs.ValueCache`)."""

    def value(self, h: Any, ctx: DecodeContext) -> Any: ...

    def items(self, x: list[Any], ctx: DecodeContext) -> list[Any]: ...


class DecodeContext:
    """What decoding needs besides the tree: the serializer (for ``serde`` envelopes), the
    revival policy (`allowed` and `pickle_key`, see `RevivalPolicy`), and for references
    the stored values (`refs`) and the expansion limit (see `ValueCache`)."""

    __slots__ = ("active", "jsonplus", "max_expansion", "policy", "refs", "serde")

    def __init__(
        self,
        serde: SerializerProtocol | None,
        allowed: Any,
        pickle_key: bytes | None = None,
        max_expansion: int = 0,
    ) -> None:
        self.serde = serde
        self.policy = RevivalPolicy(allowed, pickle_key)
        self.max_expansion = max_expansion
        self.refs: References | None = None  # resolves {"$r": h} and {"$s": h} when set
        self.active: set[str] = set()  # stored values being decoded (a cycle is an error)
        self.jsonplus = reaches_jsonplus(serde)

    def resolving(self, refs: References) -> DecodeContext:
        """This context, resolving references through `refs`."""
        ctx = object.__new__(DecodeContext)
        for name in DecodeContext.__slots__:
            object.__setattr__(ctx, name, getattr(self, name))
        ctx.refs = refs
        ctx.active = set()
        return ctx


def decode(tree: Any, ctx: DecodeContext) -> Any:
    """Decode a whole tree."""
    try:
        return decode_node(tree, ctx)
    except RecursionError as exc:
        raise DecodeError("tree is nested too deeply to decode") from exc


def decode_node(x: Any, ctx: DecodeContext) -> Any:
    """Decode one tree node."""
    t = type(x)
    if t is str or t is int or t is float or t is bool or x is None:
        return x
    if t is list:
        if ctx.refs is not None:
            return ctx.refs.items(x, ctx)
        return [
            i if (ti := type(i)) is str or ti is int or ti is float else decode_node(i, ctx)
            for i in x
        ]
    if t is dict:
        if TAG in x:
            return _envelope(x, ctx)
        if ctx.refs is not None and len(x) == 1 and REF in x:
            return ctx.refs.value(x[REF], ctx)
        out = {}
        for k, v in x.items():
            tv = type(v)
            out[k] = v if tv is str or tv is int or tv is float else decode_node(v, ctx)
        return out
    raise DecodeError(f"tree holds a non-JSON value of type {qualname(t)}")


def _envelope(x: dict[str, Any], ctx: DecodeContext) -> Any:
    tag = x[TAG]
    handler = DECODERS.get(tag) if type(tag) is str else None
    if handler is None:
        raise DecodeError(f"unknown type tag {tag!r}")
    try:
        return handler(x, ctx)
    except (DecodeError, RecursionError):
        raise
    except Exception as exc:
        raise DecodeError(f"invalid {tag!r} envelope: {type(exc).__name__}: {exc}") from exc


# ---- fields of an envelope


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


def _get_text(x: dict[str, Any], key: str, ctx: DecodeContext) -> str:
    v = x.get(key, MISSING)
    if type(v) is str:
        return v
    if type(v) is dict and v.get(TAG) == _STR:
        return _unstorable_str(v, ctx)
    if v is MISSING:
        raise DecodeError(f"{x[TAG]!r} envelope is missing {key!r}")
    raise DecodeError(f"{x[TAG]!r} envelope field {key!r} must be a string")


def _get_b64(x: dict[str, Any], key: str) -> bytes:
    v = _get(x, key, str)
    try:
        return base64.b64decode(v, validate=True)
    except ValueError as exc:
        raise DecodeError(f"{x[TAG]!r} envelope field {key!r} is not valid base64") from exc


def _get_list(x: dict[str, Any], ctx: DecodeContext) -> list[Any]:
    items: list[Any] = decode_node(_get(x, "v", list), ctx)
    return items


def _kwargs(
    x: dict[str, Any], ctx: DecodeContext, skip: Collection[str] = (TAG,)
) -> dict[str, Any]:
    return {
        k: v if (t := type(v)) is str or t is int or t is float else decode_node(v, ctx)
        for k, v in x.items()
        if k not in skip
    }


# ---- the forms: each makes the decoder of one row


def _unstorable_str(x: dict[str, Any], ctx: DecodeContext) -> str:
    parts = _get(x, "v", list)
    out = []
    for p in parts:
        if type(p) is str:
            out.append(p)
        elif type(p) is int:
            out.append(chr(p))
        else:
            raise DecodeError(f"{_STR!r} envelope parts must be strings or code points")
    return "".join(out)


def _big_int(x: dict[str, Any], ctx: DecodeContext) -> int:
    return int(_get(x, "v", str), 16)


def _float(x: dict[str, Any], ctx: DecodeContext) -> float:
    return float(_get(x, "v", str))


def _map(x: dict[str, Any], ctx: DecodeContext) -> dict[Any, Any]:
    inline: dict[Any, Any] = _kwargs(x, ctx, MAP_RESERVED)
    pairs = []
    for pair in _get(x, MAP_PAIRS, list) if MAP_PAIRS in x else ():
        if type(pair) is not list or len(pair) != 2:
            raise DecodeError(f"{x[TAG]!r} envelope entries must be [key, value] pairs")
        pairs.append((decode_node(pair[0], ctx), decode_node(pair[1], ctx)))
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
        raise DecodeError(f"{x[TAG]!r} envelope key order '$o' does not match its keys")
    out = {}
    for k in order:
        if type(k) is str:
            out[k] = inline[k]
        else:
            key, value = pairs[k]
            out[key] = value
    return out


def _serde(x: dict[str, Any], ctx: DecodeContext) -> Any:
    if ctx.serde is None:
        raise DecodeError(f"{x[TAG]!r} envelope found but no serializer is available")
    type_str = _get_text(x, "s", ctx)
    data = _get_b64(x, "b")
    if type_str == PICKLE:
        ctx.policy.check_pickle(x.get("k"), data)
    elif type_str == "msgpack" and ctx.jsonplus:
        ctx.policy.check_msgpack(data)
    return ctx.serde.loads_typed((type_str, data))


def _items(row: Envelope) -> Decoder:
    cls = row.types[0]
    return lambda x, ctx: cls(_get_list(x, ctx))


def _deque(x: dict[str, Any], ctx: DecodeContext) -> deque[Any]:
    maxlen = _get(x, "m", int) if "m" in x else None
    return deque(_get_list(x, ctx), maxlen)


def _base64(row: Envelope) -> Decoder:
    cls = row.types[0]
    if cls is bytes:
        return lambda x, ctx: _get_b64(x, "v")
    return lambda x, ctx: cls(_get_b64(x, "v"))


def _tzinfo(z: Any, ctx: DecodeContext) -> Any:
    if type(z) is str:
        return ZoneInfo(z)
    if type(z) is dict and z.get(TAG) == _TZ:
        return _timezone(z, ctx)
    raise DecodeError(f"time zone field 'z' must be a zone key or a {_TZ!r} envelope")


def _temporal(row: Envelope) -> Decoder:
    parse = row.types[0].fromisoformat  # type: ignore[attr-defined]

    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        v = parse(_get(x, "v", str))
        if "z" in x:
            v = v.replace(tzinfo=_tzinfo(x["z"], ctx))
        if "f" in x:
            v = v.replace(fold=_get(x, "f", int))
        return v

    return dec


def _date(x: dict[str, Any], ctx: DecodeContext) -> date:
    return date.fromisoformat(_get(x, "v", str))


def _timedelta(x: dict[str, Any], ctx: DecodeContext) -> timedelta:
    v = _get(x, "v", list)
    if len(v) != 3 or any(type(i) is not int for i in v):
        raise DecodeError(f"{x[TAG]!r} envelope needs [days, seconds, microseconds] ints")
    return timedelta(days=v[0], seconds=v[1], microseconds=v[2])


def _timezone(x: dict[str, Any], ctx: DecodeContext) -> timezone:
    off = timedelta(microseconds=_get(x, "v", int))
    if "n" in x:
        return timezone(off, _get_text(x, "n", ctx))
    return timezone(off)


def _text(row: Envelope) -> Decoder:
    revive = row.revive or row.types[0]
    return lambda x, ctx: revive(_get_text(x, "v", ctx))


def _pattern(x: dict[str, Any], ctx: DecodeContext) -> re.Pattern[Any]:
    v = x.get("v")
    pattern = decode_node(v, ctx) if type(v) is dict else v
    if type(pattern) not in (str, bytes):
        raise DecodeError(f"{x[TAG]!r} envelope field 'v' must be a str or bytes pattern")
    flags = _get(x, "f", int) if "f" in x else 0
    return re.compile(pattern, flags)


def _fixed(row: Envelope) -> Decoder:
    tag, fields = row.tag, row.fields
    names = frozenset(n for n, _ in fields)
    required = tuple(n for n, d in fields if d is MISSING)
    get_cls = _langgraph_class(row.langgraph) if row.langgraph else lambda: row.types[0]

    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        for k in x:
            if k not in names and k != TAG:
                raise DecodeError(f"{tag!r} envelope has unknown field {k!r}")
        for k in required:
            if k not in x:
                raise DecodeError(f"{tag!r} envelope is missing {k!r}")
        return get_cls()(**_kwargs(x, ctx))

    return dec


def _langgraph_class(name: str) -> Callable[[], type]:
    def get() -> type:
        try:
            module = importlib.import_module("langgraph.types")
        except ImportError as exc:
            raise DecodeError(f"reviving {name} needs the langgraph package") from exc
        cls: type = vars(module)[name]
        return cls

    return get


class Messages:
    """The decoders of LangChain message envelopes: `decode` for any, `decode_plain` for
    one whose fields hold no envelope and no reference (the caller has made sure), whose
    fields are then taken as parsed instead of walked."""

    def __init__(self, row: Envelope) -> None:
        self.classes: dict[str, Any] = {}
        for cls in row.types:
            self.classes[cls.model_fields["type"].default] = cls  # type: ignore[attr-defined]
        self.builders = {c: b for c in self.classes.values() if (b := builder(c)) is not None}

    def _class(self, x: dict[str, Any]) -> Any:
        mtype = x.get("type")
        cls = self.classes.get(mtype) if type(mtype) is str else None
        if cls is None:
            raise DecodeError(f"{x[TAG]!r} envelope has unknown message type {mtype!r}")
        return cls

    def _built(self, cls: Any, kw: dict[str, Any]) -> Any:
        """The message built from its fields without validation, or None to validate."""
        if cls is not RemoveMessage:
            kw.setdefault("content", "")
        build = self.builders.get(cls)
        return None if build is None else build(kw)

    def decode(self, x: dict[str, Any], ctx: DecodeContext) -> Any:
        cls = self._class(x)
        kw = _kwargs(x, ctx, (TAG, "type"))
        m = self._built(cls, kw)
        return cls(**kw) if m is None else m

    def decode_plain(self, x: dict[str, Any], ctx: DecodeContext) -> Any:
        kw = {k: v for k, v in x.items() if k != TAG and k != "type"}
        m = self._built(self._class(x), kw)
        return _envelope(x, ctx) if m is None else m  # validated, with pydantic's errors


MESSAGES = Messages(MESSAGE)


# ---- user classes: the class is resolved under the policy first


def _enum(row: Envelope) -> Decoder:
    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        cls: Any = ctx.policy.resolve(row, _get(x, "c", str))
        if "v" not in x:
            raise DecodeError(f"{row.tag!r} envelope is missing 'v'")
        return cls(decode_node(x["v"], ctx))

    return dec


def _namedtuple(row: Envelope) -> Decoder:
    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        cls: Any = ctx.policy.resolve(row, _get(x, "c", str))
        values = _get_list(x, ctx)
        if len(values) != len(cls._fields):
            raise DecodeError(f"{row.tag!r} envelope for {x['c']!r} has {len(values)} values")
        return tuple.__new__(cls, values)

    return dec


def _values(x: dict[str, Any], ctx: DecodeContext) -> dict[str, Any]:
    values = decode_node(_get(x, "v", dict), ctx)
    if type(values) is not dict or any(type(k) is not str for k in values):
        raise DecodeError(f"{x[TAG]!r} envelope field 'v' must map names to values")
    return values


def _dataclass(row: Envelope) -> Decoder:
    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        cls: Any = ctx.policy.resolve(row, _get(x, "c", str))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = _values(x, ctx)
        for k in values:
            if k not in fields:
                raise DecodeError(f"{row.tag!r} envelope for {x['c']!r} has unknown field {k!r}")
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
            if getattr(obj, k, MISSING) is not v:
                object.__setattr__(obj, k, v)
        return obj

    return dec


def _pydantic(row: Envelope, v1: bool) -> Decoder:
    def dec(x: dict[str, Any], ctx: DecodeContext) -> Any:
        cls: Any = ctx.policy.resolve(row, _get(x, "c", str))
        values = _values(x, ctx)
        unset = _get(x, "u", list) if "u" in x else ()
        fields_set = set(values).difference(unset)
        if v1:
            return cls.construct(_fields_set=fields_set, **values)
        return cls.model_construct(_fields_set=fields_set, **values)

    return dec


def _same(decoder: Decoder) -> Callable[[Envelope], Decoder]:
    return lambda row: decoder


FORMS: dict[Form, Callable[[Envelope], Decoder]] = {
    "str": _same(_unstorable_str),
    "big_int": _same(_big_int),
    "float": _same(_float),
    "map": _same(_map),
    "serde": _same(_serde),
    "items": _items,
    "deque": _same(_deque),
    "base64": _base64,
    "temporal": _temporal,
    "date": _same(_date),
    "timedelta": _same(_timedelta),
    "timezone": _same(_timezone),
    "zone": _text,
    "text": _text,
    "pattern": _same(_pattern),
    "fixed": _fixed,
    "message": lambda row: MESSAGES.decode,
    "enum": _enum,
    "pydantic": lambda row: _pydantic(row, v1=False),
    "pydantic_v1": lambda row: _pydantic(row, v1=True),
    "dataclass": _dataclass,
    "namedtuple": _namedtuple,
}
DECODERS: dict[str, Decoder] = {row.tag: FORMS[row.form](row) for row in ROWS}
"""Tag -> its decoder."""
