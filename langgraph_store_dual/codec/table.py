"""The type table: every typed envelope, the Python types it stands for, and its *form*.

A form is the shape of an envelope's payload; `encode.FORMS` and `decode.FORMS` implement
each form once for all its rows. Encoding dispatches on `Envelope.types` (exact types),
decoding on `Envelope.tag`: both dispatch dicts are derived from `ROWS` at import.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path, PosixPath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from langchain_core import messages as lc_messages
from langchain_core.documents import Document
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from pydantic import BaseModel

from .syntax import MAP_ORDER, MAP_PAIRS, MISSING

Form = Literal[
    "str",
    "big_int",
    "float",
    "map",
    "serde",
    "items",
    "deque",
    "base64",
    "temporal",
    "date",
    "timedelta",
    "timezone",
    "zone",
    "text",
    "pattern",
    "fixed",
    "message",
    "enum",
    "pydantic",
    "pydantic_v1",
    "dataclass",
    "namedtuple",
]
Fields = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One kind of typed envelope, ``{"$t": tag, <payload>}``."""

    tag: str
    form: Form
    types: tuple[type, ...] = ()
    """The exact types encoded as this envelope (empty: chosen by the encoder itself)."""
    revive: Callable[[str], Any] | None = None
    """What a ``text`` envelope is decoded with, when not ``types[0]``."""
    fields: Fields = ()
    """A ``fixed`` envelope's fields, with their defaults (`MISSING`: required)."""
    langgraph: str = ""
    """The ``langgraph.types`` class of a ``fixed`` envelope, looked up when first met."""
    kind: Callable[[type], bool] | None = None
    """User classes: whether a class is of this kind (encoding tries kinds in order)."""
    what: str = ""
    """User classes: the kind, as errors name it."""
    verbatim: frozenset[str] | None = None
    """Interning may store fields of this envelope apart, except these, which its
    decoder reads as stored; None: the envelope is stored whole."""


def is_enum(c: type) -> bool:
    return issubclass(c, Enum)


def is_dataclass(c: type) -> bool:
    return dataclasses.is_dataclass(c)


def is_namedtuple(c: type) -> bool:
    return issubclass(c, tuple) and isinstance(getattr(c, "_fields", None), tuple)


def is_pydantic(c: type) -> bool:
    return issubclass(c, BaseModel)


def is_pydantic_v1(c: type) -> bool:
    pv1 = sys.modules.get("pydantic.v1")
    return pv1 is not None and issubclass(c, pv1.BaseModel)


def _message_classes() -> tuple[type, ...]:
    """LangChain's message classes, each with a ``type`` literal naming it."""
    found = []
    for name in lc_messages.__all__:
        cls = getattr(lc_messages, name, None)
        if (
            isinstance(cls, type)
            and issubclass(cls, lc_messages.BaseMessage)
            and "type" in cls.model_fields
            and isinstance(cls.model_fields["type"].default, str)
        ):
            found.append(cls)
    return tuple(found)


_ALL: frozenset[str] = frozenset()  # interning may look into every field
_CLASS = frozenset({"c", "u"})

UNSTORABLE_STR = Envelope("s", "str")
BIG_INT = Envelope("int", "big_int")
FLOAT = Envelope("f", "float")
MAP = Envelope("map", "map", verbatim=frozenset({MAP_PAIRS, MAP_ORDER}))
SERDE = Envelope("serde", "serde")
TIMEZONE = Envelope("tz", "timezone", (timezone,))
MESSAGE = Envelope("msg", "message", _message_classes(), verbatim=frozenset({"type"}))

ROWS: tuple[Envelope, ...] = (
    # encoded by the encoder's own checks (str, int, float, dict, the serde fallback)
    UNSTORABLE_STR,
    BIG_INT,
    FLOAT,
    MAP,
    SERDE,
    # standard types
    Envelope("tup", "items", (tuple,), verbatim=_ALL),
    Envelope("set", "items", (set,), verbatim=_ALL),
    Envelope("fset", "items", (frozenset,), verbatim=_ALL),
    Envelope("deq", "deque", (deque,), verbatim=_ALL),
    Envelope("b", "base64", (bytes,)),
    Envelope("ba", "base64", (bytearray,)),
    Envelope("dt", "temporal", (datetime,)),
    Envelope("tm", "temporal", (time,)),
    Envelope("d", "date", (date,)),
    Envelope("td", "timedelta", (timedelta,)),
    TIMEZONE,
    Envelope("zi", "zone", (ZoneInfo,)),
    Envelope("uuid", "text", (UUID,)),
    Envelope("dec", "text", (Decimal,)),
    Envelope("path", "text", (PosixPath,), revive=Path),
    Envelope("wpath", "text", (WindowsPath,)),
    Envelope("ppath", "text", (PurePosixPath,)),
    Envelope("pwpath", "text", (PureWindowsPath,)),
    Envelope("re", "pattern", (re.Pattern,)),
    Envelope("ip4", "text", (ipaddress.IPv4Address,)),
    Envelope("ip6", "text", (ipaddress.IPv6Address,)),
    Envelope("ip4n", "text", (ipaddress.IPv4Network,)),
    Envelope("ip6n", "text", (ipaddress.IPv6Network,)),
    Envelope("ip4i", "text", (ipaddress.IPv4Interface,)),
    Envelope("ip6i", "text", (ipaddress.IPv6Interface,)),
    # LangChain and LangGraph classes
    MESSAGE,
    Envelope(
        "doc",
        "fixed",
        (Document,),
        fields=(("page_content", MISSING), ("metadata", {}), ("id", None)),
        verbatim=_ALL,
    ),
    Envelope("delta", "fixed", (_DeltaSnapshot,), fields=(("value", MISSING),), verbatim=_ALL),
    Envelope(
        "send",
        "fixed",
        langgraph="Send",
        fields=(("node", MISSING), ("arg", MISSING), ("timeout", None)),
        verbatim=_ALL,
    ),
    Envelope(
        "intr",
        "fixed",
        langgraph="Interrupt",
        fields=(("value", MISSING), ("id", MISSING), ("response_schema", None)),
        verbatim=_ALL,
    ),
    Envelope(
        "cmd",
        "fixed",
        langgraph="Command",
        fields=(("graph", None), ("update", None), ("resume", None), ("goto", ())),
        verbatim=_ALL,
    ),
    Envelope(
        "tpol",
        "fixed",
        langgraph="TimeoutPolicy",
        fields=(("run_timeout", None), ("idle_timeout", None), ("refresh_on", "auto")),
        verbatim=_ALL,
    ),
    # user classes, revived under the policy (see `policy`)
    Envelope("enum", "enum", kind=is_enum, what="an Enum", verbatim=_CLASS),
    Envelope("pyd", "pydantic", kind=is_pydantic, what="a pydantic model", verbatim=_CLASS),
    Envelope(
        "pyd1", "pydantic_v1", kind=is_pydantic_v1, what="a pydantic v1 model", verbatim=_CLASS
    ),
    Envelope("dc", "dataclass", kind=is_dataclass, what="a dataclass", verbatim=_CLASS),
    Envelope("nt", "namedtuple", kind=is_namedtuple, what="a namedtuple", verbatim=_CLASS),
)

LANGGRAPH = {row.langgraph: row for row in ROWS if row.langgraph}
"""The rows of ``langgraph.types`` classes, by class name."""
USER_CLASSES = tuple(row for row in ROWS if row.kind is not None)
"""The rows of user classes, in the order encoding tries them."""
OPEN_ENVELOPES = {row.tag: row.verbatim for row in ROWS if row.verbatim is not None}
"""Tags of the envelopes interning may look into -> the fields it must keep as stored."""
