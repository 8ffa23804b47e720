"""Tests for langgraph_store_dual.codec: typed JSON round trips, serde rule, allowlist."""

from __future__ import annotations

import base64
import enum
import math
import os
import re
import sys
import uuid
import warnings
from collections import deque
from dataclasses import InitVar, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
import ormsgpack
import pytest
from helpers import assert_identical as same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.store.base import Item
from langgraph.types import Command, Interrupt, Overwrite, Send, TimeoutPolicy
from pydantic import BaseModel, ConfigDict
from pydantic.v1 import BaseModel as V1BaseModel

from langgraph_store_dual.codec import REF, SPLICE, TAG, JsonCodec, decode_plain, encode_plain
from langgraph_store_dual.errors import DecodeError, UnsafeTypeError

MOD = __name__
SERDE = JsonPlusSerializer(allowed_msgpack_modules=True)
CODEC = JsonCodec(SERDE)
# CODEC_MAX_EXAMPLES=5000 for a longer fuzzing run
FAST = settings(
    max_examples=int(os.environ.get("CODEC_MAX_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- user types


class Color(enum.Enum):
    RED = 1
    GREEN = (2, "g")


class Num(enum.IntEnum):
    ONE = 1
    TWO = 2


class Mood(str, enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


@dataclass
class Point:
    x: int
    y: float = 0.0


@dataclass(frozen=True)
class FrozenBox:
    value: Any
    tags: tuple[str, ...] = ()


@dataclass
class Derived:
    a: int
    b: int = field(init=False)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.b = self.a * 2


@dataclass
class WithInitVar:
    x: int
    scale: InitVar[int]
    label: str = "none"
    seen: list[int] = field(default_factory=list)

    def __post_init__(self, scale: int) -> None:
        self.x *= scale


@dataclass(slots=True)
class Slotted:
    a: Any
    b: Any = None


@dataclass
class Nested:
    points: list[Point]
    box: FrozenBox
    by_id: dict[int, Point]


class Pair(NamedTuple):
    a: Any
    b: Any = None


class Inner(BaseModel):
    x: int = 0
    tags: list[str] = []


class Outer(BaseModel):
    name: str
    inner: Inner = Inner()
    when: datetime | None = None
    items: dict[str, Any] = {}
    anything: Any = None


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int = 1


class OldModel(V1BaseModel):
    name: str
    count: int = 0
    extra_data: dict = {}


class NotADataclass:
    """A resolvable class whose constructor must never run during decoding."""

    calls: list[Any] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        NotADataclass.calls.append((args, kwargs))


CALLED: list[Any] = []


def evil(*args: Any, **kwargs: Any) -> None:
    CALLED.append((args, kwargs))


AliasPoint = Point


class Opaque:
    """Not supported by the typed JSON encoding: only a custom serde knows it."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __eq__(self, other: object) -> bool:
        return type(other) is Opaque and other.secret == self.secret

    __hash__ = None  # type: ignore[assignment]


class OpaqueSerde(JsonPlusSerializer):
    """A JsonPlusSerializer (so the codec stays native) that also knows Opaque."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if type(obj) is Opaque:
            return "opaque", obj.secret.encode()
        return super().dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if data[0] == "opaque":
            return Opaque(data[1].decode())
        return super().loads_typed(data)


class ReverseSerde:
    """A non-JsonPlus serializer: JSON text, bytes reversed."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return "rev", orjson.dumps(encode_plain(obj))[::-1]

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        assert data[0] == "rev"
        return decode_plain(orjson.loads(data[1][::-1]))


# --------------------------------------------------------------------------- helpers


def check_tree(tree: Any) -> None:
    """Assert ``tree`` is storable unchanged in orjson and PostgreSQL JSONB."""
    t = type(tree)
    if t is str:
        assert "\x00" not in tree
        tree.encode("utf-8")  # no lone surrogates
    elif t is int:
        assert -(2**63) <= tree < 2**63
    elif t is float:
        assert math.isfinite(tree)
        assert abs(tree) < 1e16  # JSONB would print bigger floats as ints
        assert not (tree == 0 and math.copysign(1, tree) < 0)
    elif t is list:
        for x in tree:
            check_tree(x)
    elif t is dict:
        for k, v in tree.items():
            assert type(k) is str
            check_tree(k)
            check_tree(v)
    else:
        assert tree is None or t is bool, tree


def _key_repr(k: Any) -> Any:
    if type(k) is frozenset:  # iteration order of equal sets may differ
        return ("frozenset", sorted(repr(_key_repr(x)) for x in k))
    if type(k) is tuple:
        return tuple(_key_repr(x) for x in k)
    return repr(k)


def key_order(v: Any) -> Any:
    """The key order of every dict reachable through dicts, lists and tuples."""
    t = type(v)
    if t is dict:
        return [(_key_repr(k), key_order(x)) for k, x in v.items()]
    if t in (list, tuple, deque):
        return [key_order(x) for x in v]
    return None


def jsonb_like(tree: Any) -> Any:
    """What PostgreSQL JSONB hands back: object keys sorted by UTF-8 length, then bytes."""
    if type(tree) is dict:
        keys = sorted(tree, key=lambda k: (len(k.encode()), k.encode()))
        return {k: jsonb_like(tree[k]) for k in keys}
    if type(tree) is list:
        return [jsonb_like(x) for x in tree]
    return tree


def roundtrip(value: Any, codec: JsonCodec = CODEC) -> Any:
    tree = codec.encode(value)
    check_tree(tree)
    data = codec.dumps(value)
    assert b"\\u0000" not in data
    out = codec.loads(data)
    same(value, out)
    assert key_order(out) == key_order(value)
    same(value, codec.decode(tree))
    return out


# --------------------------------------------------------------------------- examples

ZI = ZoneInfo("America/New_York")
EXAMPLES: dict[str, Any] = {
    "none": None,
    "bools": [True, False],
    "ints": [0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**200, -(3**150), 10**5000],
    "floats": [1.5, float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 5e-324, 1e308],
    "str-bad": ["a\x00b", "\ud800", "x\udfffy\x00", "\x00", "é\x00😀\udc80"],
    "bytes": [b"", b"\x00\xff", bytes(range(256))],
    "bytearray": bytearray(b"abc\x00"),
    "tuple": (1, (2, (3,)), ()),
    "list-of-tuples": [(1, "a"), ("b", None)],
    "set": {1, "a", (2, 3)},
    "frozenset": frozenset({frozenset({1}), "x"}),
    "dict-int-keys": {1: "a", 2: {3: 4}},
    "dict-tuple-keys": {(1, "a"): [1], (): None},
    "dict-mixed-keys": {"a": 1, 2: "b", None: 3, True: 4, 1.5: 5},
    "dict-$t-key": {"$t": "tup", "v": [1]},
    "dict-bad-str-keys": {"a\x00": 1, "\ud800": 2},
    "dict-enum-keys": {Mood.HAPPY: 1, Num.ONE: 2},
    "deque": deque([1, "a", (2,)]),
    "deque-maxlen": deque([1, 2], maxlen=5),
    "datetime-naive": datetime(2024, 2, 29, 12, 30, 15, 123456),
    "datetime-utc": datetime(2024, 1, 1, tzinfo=timezone.utc),
    "datetime-offset": datetime(2024, 1, 1, 3, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    "datetime-odd-offset": datetime(
        2024, 1, 1, tzinfo=timezone(timedelta(seconds=61, microseconds=7))
    ),
    "datetime-named-tz": datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1), "CET")),
    "datetime-zoneinfo": datetime(2024, 7, 1, 9, tzinfo=ZoneInfo("Europe/Paris")),
    "datetime-fold": datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=ZI),
    "datetime-naive-fold": datetime(2021, 11, 7, 1, 30, fold=1),
    "date": date(1999, 12, 31),
    "time": time(23, 59, 59, 999999),
    "time-tz": time(1, 2, 3, tzinfo=timezone(timedelta(hours=5))),
    "time-zoneinfo": time(1, 2, tzinfo=ZoneInfo("Asia/Tokyo")),
    "time-usec-offset": time(0, 0, tzinfo=timezone(timedelta(microseconds=1))),
    "big-floats": [1e16, -1e16, 1.5e300, 9.99e15, 1e-7, 5e-324],
    "timedelta": [timedelta(0), timedelta(days=-3, microseconds=5), timedelta.max, timedelta.min],
    "timezone": [timezone.utc, timezone(timedelta(hours=-3)), timezone(timedelta(0), "Z")],
    "zoneinfo": ZoneInfo("Europe/London"),
    "uuid": [uuid.uuid4(), uuid.UUID(int=0)],
    "decimal": [
        Decimal("1.2300"),
        Decimal("NaN"),
        Decimal("-sNaN12"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("-0"),
        Decimal("1E+500"),
    ],
    "enum": [Color.RED, Color.GREEN, Num.TWO, Mood.SAD, Perm.R, Perm.R | Perm.W],
    "paths": [
        Path("/tmp/x y"),
        Path("rel/\udcff"),
        PurePosixPath("a/b"),
        PureWindowsPath("C:\\Users\\x"),
        PurePath("p"),
    ],
    "regex": [
        re.compile("a.b", re.I | re.M),
        re.compile(b"\x00+"),
        re.compile("x"),
        re.compile("(?s)y"),
    ],
    "ip": [
        IPv4Address("10.1.2.3"),
        IPv6Address("fe80::1%eth0"),
        IPv4Network("10.0.0.0/8"),
        IPv6Network("2001:db8::/32"),
        IPv4Interface("192.168.1.7/24"),
        IPv6Interface("2001:db8::1/64"),
    ],
    "dataclass": Point(1, 2.5),
    "dataclass-default": Point(3),
    "dataclass-frozen": FrozenBox({"k": (1, 2)}, ("t",)),
    "dataclass-init-false": Derived(4),
    "dataclass-nested": Nested([Point(1), Point(2, -0.0)], FrozenBox(None), {7: Point(7)}),
    "dataclass-slots": Slotted(b"x", {1: 2}),
    "namedtuple": [Pair(1), Pair((1, 2), Pair("x", "y"))],
    "pydantic": [
        Outer(name="a"),
        Outer(name="b", inner=Inner(x=3, tags=["t"]), anything=(1, b"x")),
    ],
    "pydantic-extra": Loose(a=2, zzz=(1,), other={"k": b"v"}),
    "pydantic-v1": [OldModel(name="x"), OldModel(name="y", count=3, extra_data={1: 2})],
    "delta-snapshot": _DeltaSnapshot({"a": [1, (2,)]}),
    "send": [Send("node", {"x": 1}), Send("n", (1,), timeout=5)],
    "timeout-policy": TimeoutPolicy(run_timeout=1.5, idle_timeout=2.0, refresh_on="heartbeat"),
    "interrupt": [
        Interrupt("question?", id="abc"),
        Interrupt({"a": 1}, id="x", response_schema={"t": 1}),
    ],
    "command": [
        Command(),
        Command(graph=Command.PARENT, goto="x", resume={"a": 1}, update={"k": (1,)}),
        Command(goto=[Send("a", 1), Send("b", 2)]),
    ],
    "document": [Document("text"), Document(page_content="t", metadata={"a": (1,)}, id="d1")],
    "overwrite": Overwrite([1, 2]),
}

MESSAGES: dict[str, Any] = {
    "human": HumanMessage("hello"),
    "human-full": HumanMessage(
        content=[{"type": "text", "text": "hi"}, "x"],
        name="bob",
        id="h1",
        additional_kwargs={"k": 1},
    ),
    "human-extra": HumanMessage("x", custom_field=(1, 2)),
    "ai": AIMessage("answer", id="a1"),
    "ai-tools": AIMessage(
        content="",
        id="a2",
        name="bot",
        tool_calls=[
            {"name": "search", "args": {"q": "x", "n": 3}, "id": "c1"},
            {"name": "calc", "args": {}, "id": "c2"},
        ],
        usage_metadata={
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_token_details": {"cache_read": 2},
        },
        response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
    ),
    "ai-invalid-tools": AIMessage(
        "x", invalid_tool_calls=[{"name": "f", "args": "{bad", "id": "i1", "error": "oops"}]
    ),
    "tool": ToolMessage("result", tool_call_id="c1", id="t1"),
    "tool-artifact": ToolMessage(
        content=[{"type": "text", "text": "r"}],
        tool_call_id="c2",
        artifact={"raw": b"\x00"},
        status="error",
    ),
    "system": SystemMessage("be nice"),
    "chat": ChatMessage("hey", role="critic"),
    "function": FunctionMessage("42", name="fn"),
    "remove": RemoveMessage(id="gone"),
    "human-chunk": HumanMessageChunk("h"),
    "ai-chunk": AIMessageChunk(
        content="part",
        tool_call_chunks=[{"name": "f", "args": '{"a": 1}', "id": "c", "index": 0}],
        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    ),
    "system-chunk": SystemMessageChunk("s"),
    "chat-chunk": ChatMessageChunk("c", role="r"),
    "tool-chunk": ToolMessageChunk("t", tool_call_id="c9"),
    "function-chunk": FunctionMessageChunk("f", name="fn"),
    "text-with-nul": HumanMessage("a\x00b\ud800", id="weird"),
    "ai-content-blocks": AIMessage(
        content_blocks=[
            {"type": "text", "text": "hi"},
            {"type": "tool_call", "name": "f", "args": {}, "id": "1"},
            {"type": "reasoning", "reasoning": "r"},
        ]
    ),
    "ai-chunk-merged": AIMessageChunk(content="a", id="1")
    + AIMessageChunk(
        content="b", tool_call_chunks=[{"name": "f", "args": "{", "id": "x", "index": 0}]
    )
    + AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": None, "args": "}", "id": None, "index": 0}],
        chunk_position="last",
    ),
}


def _variants(value: Any) -> list[Any]:
    return [value, [value], {"k": value}, (value,), {"a": [value, (value, {"b": value})]}]


@pytest.mark.parametrize("name", list(EXAMPLES) + list(MESSAGES))
def test_roundtrip_examples(name: str) -> None:
    value = EXAMPLES[name] if name in EXAMPLES else MESSAGES[name]
    for v in _variants(value):
        roundtrip(v)
    # the serde-free functions give the same result for everything on the list
    tree = encode_plain(value)
    assert tree == CODEC.encode(value)
    same(value, decode_plain(orjson.loads(orjson.dumps(tree))))


def test_constants_send_is_types_send() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.constants import Send as ConstSend
    roundtrip(ConstSend("n", 1))


def test_dataclass_fields_restored_exactly() -> None:
    d = Derived(2)
    d.b = 99  # no longer what __post_init__ computes
    out = roundtrip(d)
    assert out.b == 99
    w = WithInitVar(3, 10)  # __init__ needs an InitVar that is not stored
    out = roundtrip(w)
    assert (out.x, out.label, out.seen) == (30, "none", [])


def test_pydantic_fields_set_and_no_validation() -> None:
    out = roundtrip(Outer(name="a", when=datetime(2020, 1, 1)))
    assert out.model_fields_set == {"name", "when"}
    assert out.inner == Inner()
    old = roundtrip(OldModel(name="q"))
    assert old.__fields_set__ == {"name"}


def test_plain_json_is_readable() -> None:
    value = {"a": "b", "n": [1, 2.5, None, True], "d": {"x": {"y": []}}}
    assert CODEC.encode(value) == value
    assert orjson.loads(CODEC.dumps(value)) == value


def test_envelopes_are_compact_and_readable() -> None:
    assert CODEC.encode(HumanMessage("hi")) == {TAG: "msg", "type": "human", "content": "hi"}
    tree = CODEC.encode(MESSAGES["ai-tools"])
    assert tree == {
        TAG: "msg",
        "type": "ai",
        "content": "",
        "name": "bot",
        "id": "a2",
        "tool_calls": [
            {"name": "search", "args": {"q": "x", "n": 3}, "id": "c1", "type": "tool_call"},
            {"name": "calc", "args": {}, "id": "c2", "type": "tool_call"},
        ],
        "usage_metadata": {
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_token_details": {"cache_read": 2},
        },
        "response_metadata": {"model_name": "m", "finish_reason": "tool_calls"},
    } or tree.keys() >= {"tool_calls", "usage_metadata"}
    assert CODEC.encode((1, 2)) == {TAG: "tup", "v": [1, 2]}
    assert CODEC.encode(re.compile("x")) == {TAG: "re", "v": "x"}
    assert CODEC.encode(deque([1])) == {TAG: "deq", "v": [1]}
    assert CODEC.encode(Point(1)) == {TAG: "dc", "c": f"{MOD}:Point", "v": {"x": 1}}
    assert CODEC.encode(Send("n", 1)) == {TAG: "send", "node": "n", "arg": 1}
    assert CODEC.encode(Document("t")) == {TAG: "doc", "page_content": "t"}
    assert CODEC.encode("a\x00b") == {TAG: "s", "v": ["a", 0, "b"]}
    # a dict with keys JSON cannot hold keeps its plain keys inline (SQL can filter on them)
    assert CODEC.encode({"source": "input", "a\x00": 1, 2: (3,), "$t": "x", "$m": 0}) == {
        TAG: "map",
        "$m": [[{TAG: "s", "v": ["a", 0]}, 1], [2, {TAG: "tup", "v": [3]}], ["$t", "x"], ["$m", 0]],
        "source": "input",
    }
    assert CODEC.encode({"$m": 1}) == {"$m": 1}  # only reserved inside a map envelope


def test_floats_jsonb_would_turn_into_ints_are_enveloped() -> None:
    # PostgreSQL JSONB prints 1e+16 as 10000000000000000, which parses back as an int
    assert CODEC.encode(1e16) == {TAG: "f", "v": "1e+16"}
    assert CODEC.encode(-2.5e20) == {TAG: "f", "v": "-2.5e+20"}
    assert CODEC.encode(9.99e15) == 9.99e15
    assert CODEC.encode(-0.0) == {TAG: "f", "v": "-0.0"}
    assert CODEC.encode(0.0) == 0.0


def test_key_order_envelopes_of_earlier_versions_decode_after_a_key_sorting_store() -> None:
    # what schema versions 2 and 3 stored on PostgreSQL (JSONB, which sorts keys)
    value = {"zeta": 1, "alpha": 2, "mid": 3, "b": 4, "aa": {"y": 1, "x": 2}, "é": [{"b": 1}]}
    stored = {
        TAG: "map", "zeta": 1, "alpha": 2, "mid": 3, "b": 4,
        "aa": {TAG: "map", "y": 1, "x": 2, "$o": ["y", "x"]},
        "é": [{"b": 1}], "$o": ["zeta", "alpha", "mid", "b", "aa", "é"],
    }  # fmt: skip
    out = CODEC.decode(jsonb_like(stored))
    assert out == value and key_order(out) == key_order(value)
    # the text stores (orjson, SQLite, PostgreSQL json) keep the order themselves
    assert CODEC.encode(value) == value
    assert key_order(CODEC.loads(CODEC.dumps(value))) == key_order(value)


def test_mixed_key_dicts_keep_their_order() -> None:
    value = {2: "a", "x": 1, (1,): "b", "\x00": 2, "a": 3}
    tree = CODEC.encode(value)
    assert tree["$o"] == [0, "x", 1, 2, "a"]
    out = CODEC.decode(jsonb_like(orjson.loads(CODEC.dumps(value))))
    assert key_order(out) == key_order(value)
    same(value, out)


def test_unsupported_type_without_serde_is_type_error() -> None:
    with pytest.raises(TypeError, match="complex"):
        encode_plain(1 + 2j)
    with pytest.raises(TypeError, match="complex"):  # JsonPlusSerializer refuses it too
        CODEC.encode({"z": 1 + 2j})


def test_serde_fallback_for_unknown_classes() -> None:
    codec = JsonCodec(OpaqueSerde())
    assert codec.native
    value = {"o": Opaque("s3"), "list": [Opaque("x"), (1, Opaque("y"))]}
    tree = codec.encode(value)
    assert tree["o"] == {TAG: "serde", "s": "opaque", "b": base64.b64encode(b"s3").decode()}
    roundtrip(value, codec)
    # an Item (LangGraph store type, not on the JSON list) goes through JsonPlusSerializer
    item = Item(
        value={"a": 1},
        key="k",
        namespace=("ns",),
        created_at=datetime(2024, 1, 1),
        updated_at=datetime(2024, 1, 2),
    )
    assert CODEC.encode(item)[TAG] == "serde"
    assert CODEC.loads(CODEC.dumps([item])) == [item]
    with pytest.raises(TypeError, match="Opaque"):
        encode_plain(Opaque("x"))


def test_unresolvable_user_class_goes_to_serde() -> None:
    @dataclass
    class Local:
        a: int

    assert CODEC.encode(Local(1))[TAG] == "serde"
    with pytest.raises(TypeError, match="Local"):
        encode_plain(Local(1))


def test_encrypted_serializer_never_stores_plain_json() -> None:
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 16)
    codec = JsonCodec(serde)
    assert not codec.native
    value = {"secret": "top-secret-value", "msgs": [HumanMessage("top-secret-value")]}
    data = codec.dumps(value)
    assert b"top-secret" not in data
    tree = orjson.loads(data)
    assert set(tree) == {TAG, "s", "b"} and tree[TAG] == "serde" and tree["s"].endswith("+aes")
    assert codec.loads(data) == value
    assert codec.loads(codec.dumps(None)) is None
    # tampering with the ciphertext is a DecodeError, not a crash
    raw = bytearray(base64.b64decode(tree["b"]))
    raw[-1] ^= 1
    tree["b"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecodeError):
        codec.decode(tree)
    # EncryptedSerializer passes unencrypted "msgpack" to JsonPlusSerializer: still guarded
    with pytest.raises(UnsafeTypeError):
        codec.decode(_msgpack_envelope(1, MOD, "evil", [1]))
    assert CALLED == []


def test_custom_serializer_gets_every_value_whole() -> None:
    codec = JsonCodec(ReverseSerde())  # type: ignore[arg-type]
    assert not codec.native
    for value in ({"secret": "plain-text-secret"}, "plain-text-secret", [1, (2,)], None):
        tree = codec.encode(value)
        assert tree[TAG] == "serde" and tree["s"] == "rev"
        assert b"plain-text-secret" not in codec.dumps(value)
        same(value, codec.loads(codec.dumps(value)))


# --------------------------------------------------------------------------- allowlist


def test_native_flag() -> None:
    assert JsonCodec(JsonPlusSerializer()).native
    assert not JsonCodec(ReverseSerde()).native  # type: ignore[arg-type]


def test_strict_policy_allows_only_builtins() -> None:
    codec = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=None))
    for name in ("dataclass", "namedtuple", "pydantic", "pydantic-v1"):
        with pytest.raises(UnsafeTypeError):
            codec.loads(CODEC.dumps(EXAMPLES[name]))
    with pytest.raises(UnsafeTypeError):
        codec.loads(CODEC.dumps(Color.RED))
    # the fixed list still works, including LangGraph's own safe types
    for value in (MESSAGES["ai-tools"], EXAMPLES["command"], EXAMPLES["overwrite"], EXAMPLES["ip"]):
        roundtrip(value, codec)


def test_explicit_policy_allows_only_listed_classes() -> None:
    codec = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=[(MOD, "Point"), Color]))
    roundtrip(Point(1, 2.0), codec)
    roundtrip(Color.GREEN, codec)
    with pytest.raises(UnsafeTypeError):
        codec.loads(CODEC.dumps(Pair(1)))
    with pytest.raises(UnsafeTypeError):
        codec.decode({TAG: "dc", "c": "os:system", "v": {}})


@pytest.fixture
def side_effect_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A not-yet-imported module defining a dataclass; importing it writes a marker file."""
    name = f"lgsd_codec_sidefx_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        "import pathlib\n"
        "from dataclasses import dataclass\n"
        f"pathlib.Path({str(marker)!r}).write_text('yes')\n"
        "@dataclass\n"
        "class Thing:\n"
        "    a: int\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_permissive_policy_never_imports(side_effect_module: tuple[str, Path]) -> None:
    name, marker = side_effect_module
    tree = {TAG: "dc", "c": f"{name}:Thing", "v": {"a": 1}}
    for codec in (CODEC, JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=None))):
        with pytest.raises(UnsafeTypeError):
            codec.decode(tree)
    with pytest.raises(UnsafeTypeError):
        decode_plain(tree)
    assert name not in sys.modules and not marker.exists()
    # an explicit allowlist entry may import the module
    codec = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=[(name, "Thing")]))
    thing = codec.decode(tree)
    assert type(thing).__name__ == "Thing" and thing.a == 1 and marker.exists()
    # once imported, the permissive default revives it too
    assert CODEC.decode(tree) == thing
    assert decode_plain(tree, allowed_modules=True) == thing
    with pytest.raises(UnsafeTypeError):
        decode_plain(tree, allowed_modules=None)


@pytest.mark.parametrize(
    "tree",
    [
        {TAG: "dc", "c": "os:system", "v": {}},
        {TAG: "dc", "c": "os:system", "v": {"command": "echo pwned"}},
        {TAG: "enum", "c": "subprocess:Popen", "v": ["echo", "pwned"]},
        {TAG: "pyd", "c": "builtins:eval", "v": {"source": "1"}},
        {TAG: "pyd1", "c": "builtins:exec", "v": {}},
        {TAG: "nt", "c": "builtins:type", "v": ["X", [], {}]},
        {TAG: "nt", "c": "os:stat_result", "v": [0] * 10},  # struct seq, not a namedtuple
        {TAG: "dc", "c": f"{MOD}:evil", "v": {}},
        {TAG: "dc", "c": f"{MOD}:NotADataclass", "v": {"a": 1}},
        {TAG: "enum", "c": f"{MOD}:NotADataclass", "v": 1},
        {TAG: "pyd", "c": f"{MOD}:Point", "v": {"x": 1}},  # wrong kind
        {TAG: "dc", "c": f"{MOD}:AliasPoint", "v": {"x": 1}},  # alias, not the real path
        {TAG: "dc", "c": "lgsd_no_such_module_xyz:Thing", "v": {}},
    ],
)
def test_tampered_class_references_are_refused(tree: dict[str, Any]) -> None:
    CALLED.clear()
    NotADataclass.calls.clear()
    before = set(sys.modules)
    with pytest.raises(UnsafeTypeError):
        CODEC.decode(tree)
    with pytest.raises(UnsafeTypeError):
        CODEC.decode({"nested": [tree]})
    assert set(sys.modules) == before
    assert CALLED == [] and NotADataclass.calls == []


@pytest.mark.parametrize(
    "tree",
    [
        {TAG: "nope"},
        {TAG: 5, "v": 1},
        {TAG: None},
        {TAG: "uuid", "v": 5},
        {TAG: "uuid", "v": "not-a-uuid"},
        {TAG: "uuid"},
        {TAG: "b", "v": "***"},
        {TAG: "b", "v": "abc"},
        {TAG: "ba", "v": [1]},
        {TAG: "s", "v": ["a", 1.5]},
        {TAG: "s", "v": [0x110000]},
        {TAG: "s", "v": "abc"},
        {TAG: "int", "v": "zz"},
        {TAG: "int", "v": 5},
        {TAG: "f", "v": "nanx"},
        {TAG: "tup", "v": {"a": 1}},
        {TAG: "set", "v": [[1]]},
        {TAG: "map", "$m": [[1]]},
        {TAG: "map", "$m": [[[1], 2]]},
        {TAG: "map", "$m": {"a": 1}},
        {TAG: "map", "$o": ["a"]},
        {TAG: "map", "$o": "ab", "a": 1, "b": 2},
        {TAG: "map", "$o": ["a", "a"], "a": 1, "b": 2},
        {TAG: "deq", "v": [], "m": "x"},
        {TAG: "deq", "v": [], "m": -1},
        {TAG: "dt", "v": "yesterday"},
        {TAG: "dt", "v": "2020-01-01T00:00:00", "z": "../../etc/passwd"},
        {TAG: "dt", "v": "2020-01-01T00:00:00", "z": "No/Such_Zone"},
        {TAG: "dt", "v": "2020-01-01T00:00:00", "z": 5},
        {TAG: "dt", "v": "2020-01-01T00:00:00", "f": 7},
        {TAG: "tm", "v": 12},
        {TAG: "d", "v": "2020-13-01"},
        {TAG: "td", "v": [1, 2]},
        {TAG: "td", "v": ["1", 2, 3]},
        {TAG: "tz", "v": 10**12},
        {TAG: "zi", "v": "/etc/passwd"},
        {TAG: "dec", "v": "1.2.3"},
        {TAG: "path", "v": None},
        {TAG: "re", "v": "("},
        {TAG: "re", "v": 1},
        {TAG: "ip4", "v": "999.1.1.1"},
        {TAG: "ip6n", "v": "::1/200"},
        {TAG: "msg", "type": "alien", "content": "x"},
        {TAG: "msg", "type": ["ai"], "content": "x"},
        {TAG: "msg", "type": "tool", "content": "x"},  # tool_call_id missing
        {TAG: "msg", "type": "human", "content": 5},
        {TAG: "msg", "type": "remove", "content": "x"},
        {TAG: "doc", "metadata": {}},
        {TAG: "doc", "page_content": "x", "evil": 1},
        {TAG: "send", "node": "x"},
        {TAG: "intr", "value": 1},
        {TAG: "cmd", "graph": "x", "__class__": 1},
        {TAG: "tpol", "bogus": 1},
        {TAG: "delta"},
        {TAG: "enum", "c": f"{MOD}:Color", "v": 99},
        {TAG: "enum", "c": f"{MOD}:Color"},
        {TAG: "enum", "c": 5, "v": 1},
        {TAG: "enum", "c": "no-colon", "v": 1},
        {TAG: "enum", "c": f"{MOD}:Color.__class__", "v": 1},
        {TAG: "dc", "c": f"{MOD}:Point", "v": {"x": 1, "zzz": 2}},
        {TAG: "dc", "c": f"{MOD}:Point", "v": [1]},
        {TAG: "dc", "c": f"{MOD}:Missing", "v": {}},
        {TAG: "nt", "c": f"{MOD}:Pair", "v": [1, 2, 3]},
        {TAG: "pyd", "c": f"{MOD}:Outer", "v": {"name": "x"}, "u": "name"},
        {TAG: "serde", "s": "msgpack", "b": "!!"},
        {TAG: "serde", "s": "msgpack", "b": base64.b64encode(b"\xc1garbage").decode()},
        {TAG: "serde", "s": "pickle", "b": ""},
        {TAG: "serde", "s": 1, "b": ""},
    ],
)
def test_tampered_trees_raise_decode_error(tree: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(tree)
    assert str(info.value)
    with pytest.raises(DecodeError):
        CODEC.decode([{"k": tree}])
    with pytest.raises(DecodeError):
        CODEC.loads(orjson.dumps(tree))


def _msgpack_envelope(code: int, module: str, name: str, arg: Any) -> dict[str, Any]:
    """A 'serde' envelope whose JsonPlusSerializer payload names ``module.name``."""
    packed = ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb([module, name, arg])))
    return {TAG: "serde", "s": "msgpack", "b": base64.b64encode(packed).decode()}


def test_serde_payloads_get_the_same_class_policy(side_effect_module: tuple[str, Path]) -> None:
    """JsonPlusSerializer alone would import and call whatever a msgpack payload names."""
    name, marker = side_effect_module
    CALLED.clear()
    NotADataclass.calls.clear()
    refused = [
        _msgpack_envelope(2, name, "Thing", {"a": 1}),  # module not imported
        _msgpack_envelope(1, "os", "system", ["echo pwned"]),  # not a class
        _msgpack_envelope(1, MOD, "evil", [1]),
        _msgpack_envelope(2, MOD, "NotADataclass", {"a": 1}),  # a class, but no value type
        _msgpack_envelope(0, "subprocess", "Popen", "true"),
    ]
    # nested inside an allowed extension (a _DeltaSnapshot) is refused as well
    inner = ormsgpack.Ext(1, ormsgpack.packb([MOD, "evil", [2]]))
    nested = ormsgpack.packb(ormsgpack.Ext(7, ormsgpack.packb({"k": inner})))
    refused.append({TAG: "serde", "s": "msgpack", "b": base64.b64encode(nested).decode()})
    import subprocess  # noqa: F401  (imported, so only the kind check stops Popen)

    for tree in refused:
        with pytest.raises(UnsafeTypeError):
            CODEC.decode({"x": [tree]})
    assert name not in sys.modules and not marker.exists()
    assert CALLED == [] and NotADataclass.calls == []
    # allowed: LangGraph's safe list, and value classes from imported modules
    ok = CODEC.decode(_msgpack_envelope(2, MOD, "Point", {"x": 1, "y": 2.0}))
    assert ok == Point(1, 2.0)
    # a name the imported module does not define: the serde keeps the raw payload
    assert CODEC.decode(_msgpack_envelope(2, MOD, "NoSuchThing", {"a": 1})) == {"a": 1}
    # strict and explicit policies apply too
    strict = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=None))
    with pytest.raises(UnsafeTypeError):
        strict.decode(_msgpack_envelope(2, MOD, "Point", {"x": 1}))
    explicit = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=[(MOD, "Point")]))
    assert explicit.decode(_msgpack_envelope(2, MOD, "Point", {"x": 1})) == Point(1)
    with pytest.raises(UnsafeTypeError):
        explicit.decode(_msgpack_envelope(2, MOD, "Pair", {"a": 1}))


def test_other_malformed_input() -> None:
    with pytest.raises(DecodeError):
        CODEC.loads(b"{not json")
    with pytest.raises(DecodeError):
        CODEC.decode({"a": object()})
    deep: Any = 1
    for _ in range(20000):
        deep = [deep]
    with pytest.raises(DecodeError):
        CODEC.decode(deep)
    with pytest.raises(DecodeError, match="serializer"):
        decode_plain({TAG: "serde", "s": "msgpack", "b": ""})


def test_error_names_the_tag() -> None:
    with pytest.raises(DecodeError, match="uuid"):
        CODEC.decode({TAG: "uuid", "v": 5})
    with pytest.raises(DecodeError, match="'zz'"):
        CODEC.decode({TAG: "zz"})
    with pytest.raises(DecodeError, match="missing 'v'"):
        CODEC.decode({TAG: "tup"})


# --------------------------------------------------------------------------- properties

BAD_CHARS = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00"])
TEXT = st.text(st.one_of(st.characters(codec=None, exclude_categories=()), BAD_CHARS), max_size=12)
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**62)),
    st.integers(min_value=2**64, max_value=2**300).map(lambda i: i * st_sign(i)),
)


def st_sign(i: int) -> int:
    return -1 if i % 2 else 1


FLOATS = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0]))
FIXED_TZ = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
TZS = st.one_of(st.none(), st.just(timezone.utc), FIXED_TZ, st.timezones())
HASHABLE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=False),
    TEXT,
    st.binary(max_size=8),
    st.uuids(),
    st.dates(),
    st.sampled_from([Color.RED, Color.GREEN, Num.ONE, Mood.HAPPY, Perm.W]),
)
HASHABLE = st.recursive(
    HASHABLE_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple), st.frozensets(inner, max_size=3)
    ),
    max_leaves=6,
)
SCALARS = st.one_of(
    HASHABLE_SCALARS,
    FLOATS,
    st.binary(max_size=8).map(bytearray),
    st.datetimes(timezones=TZS),
    st.times(timezones=st.one_of(st.none(), FIXED_TZ)),
    st.timedeltas(),
    FIXED_TZ,
    st.decimals(),
    st.ip_addresses(),
    st.builds(Path, st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=6)),
    st.builds(
        PureWindowsPath,
        st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=6),
    ),
    st.builds(HumanMessage, TEXT, id=st.none() | TEXT),
    st.builds(
        AIMessage,
        TEXT,
        tool_calls=st.lists(
            st.fixed_dictionaries(
                {"name": TEXT, "args": st.dictionaries(TEXT, INTS, max_size=2), "id": TEXT}
            ),
            max_size=2,
        ),
    ),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(TEXT, inner, max_size=4),
        st.dictionaries(HASHABLE, inner, max_size=3),
        st.sets(HASHABLE, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
        st.builds(deque, st.lists(inner, max_size=3), st.none() | st.integers(3, 5)),
        st.builds(Slotted, inner, inner),
        st.builds(FrozenBox, inner),
        st.builds(Pair, inner, inner),
        st.builds(Outer, name=TEXT, anything=inner),
        st.builds(Send, TEXT, inner),
        st.builds(Interrupt, inner, id=st.text(max_size=5)),
        st.builds(_DeltaSnapshot, inner),
    )


VALUES = st.recursive(SCALARS, _containers, max_leaves=12)

JSON_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)
PLAIN_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(min_value=-1e16, max_value=1e16, exclude_min=True, exclude_max=True).filter(
            lambda f: not (f == 0 and math.copysign(1, f) < 0)
        ),
        JSON_TEXT,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        # keys the codec reserves ("$t", and "$r"/"$s" for stored values) make an envelope
        st.dictionaries(JSON_TEXT.filter(lambda k: k not in (TAG, REF, SPLICE)), inner, max_size=4),
    ),
    max_leaves=15,
)


@FAST
@given(VALUES)
def test_property_roundtrip(value: Any) -> None:
    roundtrip(value)


@FAST
@given(VALUES)
def test_property_tree_is_storable(value: Any) -> None:
    tree = CODEC.encode(value)
    check_tree(tree)
    data = orjson.dumps(tree)
    assert b"\\u0000" not in data
    assert orjson.loads(data) == tree


@settings(max_examples=200, deadline=None)
@given(PLAIN_JSON)
def test_property_plain_json_encodes_to_itself(value: Any) -> None:
    """Plain JSON is stored as itself (dict keys the codec reserves aside)."""
    tree = CODEC.encode(value)
    same(value, tree)
    same(value, encode_plain(value))
    same(value, CODEC.loads(CODEC.dumps(value)))


@FAST
@given(TEXT, FLOATS, INTS)
def test_property_scalars(text: str, number: float, integer: int) -> None:
    value = {text: [text, number, integer], "k": {integer: text, number: integer}}
    roundtrip(value)
    if math.isnan(number) or math.isinf(number) or (number == 0 and math.copysign(1, number) < 0):
        assert CODEC.encode(number)[TAG] == "f"
    if not -(2**63) <= integer < 2**63:
        assert CODEC.encode(integer)[TAG] == "int"


@FAST
@given(st.dictionaries(HASHABLE, VALUES, max_size=4))
def test_property_dicts_with_any_keys(value: dict[Any, Any]) -> None:
    roundtrip(value)
