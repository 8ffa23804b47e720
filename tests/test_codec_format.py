"""The stored JSON of every typed envelope, byte for byte: it is persisted data, so a
change here breaks every database written before it."""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import PosixPath, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Command, Interrupt, Send, TimeoutPolicy
from pydantic import BaseModel, SecretStr
from pydantic.v1 import BaseModel as V1BaseModel

from langgraph_store_dual.codec import JsonCodec, encode_plain

MOD = __name__
CODEC = JsonCodec(JsonPlusSerializer(allowed_msgpack_modules=True))


class Shade(enum.Enum):
    DARK = "d"


@dataclass
class Spot:
    x: int
    y: float = 0.0


class Duo(NamedTuple):
    a: Any
    b: Any = None


class Card(BaseModel):
    name: str
    size: int = 1


class OldCard(V1BaseModel):
    name: str
    size: int = 1


STORED: list[tuple[Any, bytes]] = [
    ("a\x00\ud800b", b'{"$t":"s","v":["a",0,55296,"b"]}'),
    (2**64, b'{"$t":"int","v":"10000000000000000"}'),
    (-0.0, b'{"$t":"f","v":"-0.0"}'),
    (1e300, b'{"$t":"f","v":"1e+300"}'),
    (
        {1: "a", "b": 2, (3,): None},
        b'{"$t":"map","b":2,"$m":[[1,"a"],[{"$t":"tup","v":[3]},null]],"$o":[0,"b",1]}',
    ),
    ({"$t": 1}, b'{"$t":"map","$m":[["$t",1]]}'),
    ({"$r": 1}, b'{"$t":"map","$r":1}'),
    ((1, "x"), b'{"$t":"tup","v":[1,"x"]}'),
    ({3}, b'{"$t":"set","v":[3]}'),
    (frozenset({"y"}), b'{"$t":"fset","v":["y"]}'),
    (deque([1, 2], maxlen=5), b'{"$t":"deq","v":[1,2],"m":5}'),
    (b"\x00\xff", b'{"$t":"b","v":"AP8="}'),
    (bytearray(b"ab"), b'{"$t":"ba","v":"YWI="}'),
    (
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=ZoneInfo("Europe/Paris")),
        b'{"$t":"dt","v":"2026-01-02T03:04:05.000006+01:00","z":"Europe/Paris"}',
    ),
    (
        datetime(2026, 1, 2, fold=1, tzinfo=timezone(timedelta(hours=1), "X")),
        b'{"$t":"dt","v":"2026-01-02T00:00:00+01:00","z":{"$t":"tz","v":3600000000,"n":"X"},"f":1}',
    ),
    (time(1, 2, 3, tzinfo=timezone.utc), b'{"$t":"tm","v":"01:02:03+00:00"}'),
    (date(2026, 1, 2), b'{"$t":"d","v":"2026-01-02"}'),
    (timedelta(days=1, seconds=2, microseconds=3), b'{"$t":"td","v":[1,2,3]}'),
    (timezone(timedelta(minutes=-90), "Y"), b'{"$t":"tz","v":-5400000000,"n":"Y"}'),
    (ZoneInfo("UTC"), b'{"$t":"zi","v":"UTC"}'),
    (UUID(int=7), b'{"$t":"uuid","v":"00000000-0000-0000-0000-000000000007"}'),
    (Decimal("1.50"), b'{"$t":"dec","v":"1.50"}'),
    (PosixPath("/tmp/a"), b'{"$t":"path","v":"/tmp/a"}'),
    (PurePosixPath("a/b"), b'{"$t":"ppath","v":"a/b"}'),
    (PureWindowsPath("C:/x"), b'{"$t":"pwpath","v":"C:\\\\x"}'),
    (re.compile(b"a+", re.I), b'{"$t":"re","v":{"$t":"b","v":"YSs="},"f":2}'),
    (ip_address("10.0.0.1"), b'{"$t":"ip4","v":"10.0.0.1"}'),
    (ip_address("::1"), b'{"$t":"ip6","v":"::1"}'),
    (ip_network("10.0.0.0/8"), b'{"$t":"ip4n","v":"10.0.0.0/8"}'),
    (ip_network("::/64"), b'{"$t":"ip6n","v":"::/64"}'),
    (ip_interface("10.0.0.1/24"), b'{"$t":"ip4i","v":"10.0.0.1/24"}'),
    (ip_interface("::1/64"), b'{"$t":"ip6i","v":"::1/64"}'),
    (HumanMessage("hi", id="1"), b'{"$t":"msg","type":"human","content":"hi","id":"1"}'),
    (
        AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c"}]),
        b'{"$t":"msg","type":"ai","tool_calls":[{"name":"f","args":{},"id":"c","type":"tool_call"}]}',
    ),
    (RemoveMessage(id="9"), b'{"$t":"msg","type":"remove","id":"9"}'),
    (  # fields at their default are left out, others kept (an empty string is not None)
        AIMessage("x", additional_kwargs={}, response_metadata={"m": 1}, name="n", id=""),
        b'{"$t":"msg","type":"ai","content":"x","response_metadata":{"m":1},"name":"n","id":""}',
    ),
    (
        ToolMessage("r", tool_call_id="c", status="error", artifact=0),
        b'{"$t":"msg","type":"tool","content":"r","tool_call_id":"c","artifact":0,"status":"error"}',
    ),
    (  # a field's text JSON cannot hold as is keeps its envelope
        HumanMessage("h", name="a\x00b"),
        b'{"$t":"msg","type":"human","content":"h","name":{"$t":"s","v":["a",0,"b"]}}',
    ),
    (Document("t", metadata={"k": 1}), b'{"$t":"doc","page_content":"t","metadata":{"k":1}}'),
    (_DeltaSnapshot([1]), b'{"$t":"delta","value":[1]}'),
    (Send("n", {"a": 1}), b'{"$t":"send","node":"n","arg":{"a":1}}'),
    (Interrupt(value="v", id="i"), b'{"$t":"intr","value":"v","id":"i"}'),
    (Command(goto="x", update={"a": 1}), b'{"$t":"cmd","update":{"a":1},"goto":"x"}'),
    (TimeoutPolicy(run_timeout=1.5), b'{"$t":"tpol","run_timeout":1.5}'),
    (Shade.DARK, b'{"$t":"enum","c":"%s:Shade","v":"d"}' % MOD.encode()),
    (Spot(1), b'{"$t":"dc","c":"%s:Spot","v":{"x":1}}' % MOD.encode()),
    (Duo(1), b'{"$t":"nt","c":"%s:Duo","v":[1,null]}' % MOD.encode()),
    (Card(name="c"), b'{"$t":"pyd","c":"%s:Card","v":{"name":"c"}}' % MOD.encode()),
    (
        Card(name="c", size=1),
        b'{"$t":"pyd","c":"%s:Card","v":{"name":"c","size":1}}' % MOD.encode(),
    ),
    (OldCard(name="c"), b'{"$t":"pyd1","c":"%s:OldCard","v":{"name":"c"}}' % MOD.encode()),
    (  # no envelope: the serializer's msgpack
        SecretStr("s"),
        b'{"$t":"serde","s":"msgpack","b":"xxwAk65weWRhbnRpYy50eXBlc6lTZWNyZXRTdHKhcw=="}',
    ),
]


@pytest.mark.parametrize(("value", "stored"), STORED, ids=[repr(s) for _, s in STORED])
def test_stored_json_of_each_envelope(value: Any, stored: bytes) -> None:
    assert CODEC.dumps(value) == stored
    revived = CODEC.loads(stored)
    assert type(revived) is type(value)
    assert revived == value
    assert CODEC.dumps(revived) == stored


def test_values_without_a_serializer_store_the_same() -> None:
    for value, stored in STORED[:-1]:
        assert CODEC.encode(value) == encode_plain(value), stored
