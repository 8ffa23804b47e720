"""`codec.messages.builder`: a stored message rebuilt without pydantic's validation is the
very message validation would build, and anything validation would change or refuse is
left to validation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from helpers import assert_identical, message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import PrivateAttr, field_validator, model_validator

from langgraph_store_dual.codec import TAG, JsonCodec, ValueCache, decode_plain, encode_plain, refs
from langgraph_store_dual.codec.decode import MESSAGES
from langgraph_store_dual.codec.messages import builder
from langgraph_store_dual.core.intern import FANOUT, intern_channels

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMMON = (HumanMessage, AIMessage, SystemMessage, ToolMessage, ChatMessage, FunctionMessage)


def assert_same_model(got: Any, want: Any) -> None:
    """Everything pydantic keeps of a model, fields in their order, of identical types."""
    assert type(got) is type(want)
    assert_identical(list(got.__dict__.items()), list(want.__dict__.items()))
    assert got.__pydantic_extra__ == want.__pydantic_extra__
    assert got.__pydantic_fields_set__ == want.__pydantic_fields_set__
    assert got.__pydantic_private__ == want.__pydantic_private__


def stored_fields(m: BaseMessage) -> dict[str, Any]:
    """The fields a stored `m` is decoded into, before the message is made."""
    tree = encode_plain(m)
    assert tree[TAG] == "msg"
    kw = {k: decode_plain(v) for k, v in tree.items() if k not in (TAG, "type")}
    kw.setdefault("content", "")
    return kw


def assert_as_validated(cls: type[BaseMessage], kw: dict[str, Any]) -> bool:
    """Either the builder declines, or validation accepts `kw` and builds the same
    message; returns whether the builder built it."""
    build = builder(cls)
    assert build is not None
    built = build(copy.deepcopy(kw))
    if built is None:
        return False
    assert_same_model(built, cls(**copy.deepcopy(kw)))
    return True


text = st.text(max_size=12)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
content = text | st.lists(text | st.dictionaries(text, json, max_size=3), max_size=3)
common = {
    "additional_kwargs": st.dictionaries(text, json, max_size=3),
    "response_metadata": st.dictionaries(text, json, max_size=3),
    "name": st.none() | text,
    "id": st.none() | text,
}
tool_call = st.fixed_dictionaries(
    {"name": text, "args": st.dictionaries(text, json, max_size=3), "id": st.none() | text}
)
invalid_call = st.fixed_dictionaries(
    {}, optional={"name": text, "args": text, "id": text, "error": text}
)
count = st.integers(min_value=0, max_value=10**6)
usage = st.fixed_dictionaries(
    {"input_tokens": count, "output_tokens": count, "total_tokens": count},
    optional={
        "input_token_details": st.fixed_dictionaries(
            {}, optional={"audio": count, "cache_read": count, "cache_creation": count}
        ),
        "output_token_details": st.fixed_dictionaries(
            {}, optional={"audio": count, "reasoning": count}
        ),
    },
)
OWN: dict[type[BaseMessage], dict[str, Any]] = {
    HumanMessage: {},
    SystemMessage: {},
    AIMessage: {
        "tool_calls": st.lists(tool_call, max_size=3),
        "invalid_tool_calls": st.lists(invalid_call, max_size=2),
        "usage_metadata": st.none() | usage,
    },
    ToolMessage: {
        "tool_call_id": text,
        "artifact": json,
        "status": st.sampled_from(["success", "error"]),
    },
    ChatMessage: {"role": text},
    FunctionMessage: {"name": text},
}
REQUIRED = {ToolMessage: {"tool_call_id"}, ChatMessage: {"role"}, FunctionMessage: {"name"}}


@st.composite
def messages(draw: st.DrawFn) -> BaseMessage:
    cls = draw(st.sampled_from(COMMON))
    fields = {**common, **OWN[cls]}
    required = REQUIRED.get(cls, set())
    kw = draw(
        st.fixed_dictionaries(
            {k: s for k, s in fields.items() if k in required},
            optional={k: s for k, s in fields.items() if k not in required},
        )
    )
    return cls(content=draw(content), **kw)


@SETTINGS
@given(messages())
def test_a_stored_message_is_built_as_validation_builds_it(m: BaseMessage) -> None:
    kw = stored_fields(m)
    assert assert_as_validated(type(m), kw), kw
    assert_same_model(decode_plain(encode_plain(m)), type(m)(**stored_fields(m)))


# values of every JSON type, and of types JSON does not have
anything = json | st.tuples(text) | st.sets(st.integers(), max_size=2) | st.just(b"x")


@SETTINGS
@given(messages(), st.data())
def test_tampered_fields_are_left_to_validation(m: BaseMessage, data: st.DataObject) -> None:
    """Replace fields, or parts of them, by values of any type: the builder builds only
    what validation builds the same, and declines everything else."""
    kw = stored_fields(m)
    keys = [*sorted(type(m).model_fields.keys() - {"type"}), "extra_key"]
    for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3)):
        old = kw.get(key)
        if isinstance(old, list) and old and data.draw(st.booleans()):
            old[data.draw(st.integers(0, len(old) - 1))] = data.draw(anything)
        elif isinstance(old, dict) and old and data.draw(st.booleans()):
            kw[key] = {**old, data.draw(st.sampled_from(sorted(old))): data.draw(anything)}
        else:
            kw[key] = data.draw(anything)
    try:
        type(m)(**copy.deepcopy(kw))
    except Exception:  # validation refuses: the builder must decline
        build = builder(type(m))
        assert build is not None
        assert build(copy.deepcopy(kw)) is None
    else:
        assert_as_validated(type(m), kw)


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (HumanMessage, {"content": 5}),
        (HumanMessage, {"content": "x", "id": 7}),  # validation turns it into "7"
        (HumanMessage, {"content": ("a",)}),
        (HumanMessage, {"content": "x", "additional_kwargs": []}),
        (HumanMessage, {"content": "x", "custom": 1}),  # an extra field
        (ToolMessage, {"content": "x"}),  # no tool_call_id
        (ToolMessage, {"content": "x", "tool_call_id": 3}),
        (ToolMessage, {"content": "x", "tool_call_id": "c", "status": "done"}),
        (AIMessage, {"content": "", "tool_calls": [{"name": "f", "args": {}, "id": "1"}]}),
        (AIMessage, {"content": "", "tool_calls": [{"name": 1, "args": {}, "id": "1"}]}),
        (
            AIMessage,
            {"content": "", "additional_kwargs": {"tool_calls": [{"id": "1", "function": {}}]}},
        ),
        (
            AIMessage,
            {
                "content": "",
                "usage_metadata": {"input_tokens": True, "output_tokens": 1, "total_tokens": 1},
            },
        ),
    ],
)
def test_fields_validation_would_change_or_refuse_are_declined(
    cls: type[BaseMessage], kw: dict[str, Any]
) -> None:
    build = builder(cls)
    assert build is not None
    assert build(copy.deepcopy(kw)) is None


def test_the_common_messages_have_builders() -> None:
    """The speed of cold reads rests on these; a LangChain upgrade that adds a validator
    to one of them turns its builder off, and this test says so."""
    assert all(builder(cls) is not None for cls in COMMON)


class WithFieldValidator(HumanMessage):
    @field_validator("content")
    @classmethod
    def upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class WithAfterValidator(HumanMessage):
    @model_validator(mode="after")
    def touch(self) -> WithAfterValidator:
        return self


class WithInit(HumanMessage):
    def __init__(self, content: Any, **kwargs: Any) -> None:
        super().__init__(content=f"<{content}>", **kwargs)


class WithPrivate(HumanMessage):
    _secret: int = PrivateAttr(default=1)


class WithUnknownField(HumanMessage):
    when: tuple[int, int] = (0, 0)


@pytest.mark.parametrize(
    "cls",
    [
        WithFieldValidator,
        WithAfterValidator,
        WithInit,
        WithPrivate,
        WithUnknownField,
        RemoveMessage,
        AIMessageChunk,
    ],
)
def test_classes_with_logic_not_known_here_get_no_builder(cls: type[BaseMessage]) -> None:
    assert builder(cls) is None


# -- runs of plain messages: fields taken as parsed (`refs._messages_alone`) ------------

CODEC = JsonCodec(JsonPlusSerializer())


def _stored_run(msgs: list[BaseMessage]) -> tuple[Any, dict[str, str]]:
    """The messages interned as a thread stores them: the channel's tree and the texts of
    its values (runs of messages, each but the first starting with a splice)."""
    interned = intern_channels({"messages": CODEC.encode(msgs)})
    raw = {h: data.decode() for h, (data, _) in interned.values.items()}
    return interned.channels["messages"], raw


def _decoded(tree: Any, raw: dict[str, str], plain: bool, shared: bool = False) -> Any:
    real = refs._messages_alone
    refs._messages_alone = real if plain else (lambda run, text: False)  # type: ignore[assignment]
    try:
        return CODEC.decode(tree, ValueCache(raw=raw, shared=shared))
    finally:
        refs._messages_alone = real


def _plain_uses(tree: Any, raw: dict[str, str]) -> int:
    """How many messages a decoding takes the plain way."""
    calls = 0
    real = MESSAGES.decode_plain

    def counted(x: dict[str, Any], ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(x, ctx)

    MESSAGES.decode_plain = counted  # type: ignore[method-assign]
    try:
        CODEC.decode(tree, ValueCache(raw=raw, shared=False))
    finally:
        del MESSAGES.decode_plain
    return calls


@SETTINGS
@given(st.lists(messages(), min_size=FANOUT + 1, max_size=3 * FANOUT))
def test_runs_of_messages_decode_as_every_message_decoded_alone(msgs: list[BaseMessage]) -> None:
    """Generated messages (strings starting with "$", nested lists and dicts): taking a
    run's fields as parsed gives exactly what walking them gives."""
    tree, raw = _stored_run(msgs)
    got, want = _decoded(tree, raw, plain=True), _decoded(tree, raw, plain=False)
    assert len(got) == len(want) == len(msgs)
    for g, w in zip(got, want, strict=True):
        assert_same_model(g, w)


def test_an_agents_runs_take_the_plain_way() -> None:
    msgs = [message(i) for i in range(60)]
    tree, raw = _stored_run(msgs)
    assert _plain_uses(tree, raw) >= 40  # all but the last few, not yet in a closed run
    for g, w in zip(_decoded(tree, raw, plain=True), msgs, strict=True):
        assert_same_model(g, w)


def _replaced(raw: dict[str, str], old: str, new: str) -> dict[str, str]:
    hits = {h: t for h, t in raw.items() if old in t}
    assert hits, old
    return {**raw, **{h: t.replace(old, new, 1) for h, t in hits.items()}}


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        # a tampered id: validation turns 7 into "7", the plain way declines to build
        ('"id":"h4"', '"id":7', lambda ms: ms[4].id == "7"),
        # an envelope inside a message: a datetime in its metadata is revived
        (
            '"id":"h8"',
            '"id":"h8","response_metadata":{"at":{"$t":"d","v":"2026-12-05"}}',
            lambda ms: ms[8].response_metadata == {"at": date(2026, 12, 5)},
        ),
        # a string starting with "$" is text, not a tag
        ('"content":"question 12"', '"content":"$12"', lambda ms: ms[12].content == "$12"),
    ],
)
def test_a_run_with_anything_else_inside_is_walked(
    old: str, new: str, check: Callable[[list[Any]], bool]
) -> None:
    tree, raw = _stored_run([message(i) for i in range(60)])
    raw = _replaced(raw, old, new)
    got = _decoded(tree, raw, plain=True)
    assert check(got)
    for g, w in zip(got, _decoded(tree, raw, plain=False), strict=True):
        assert_same_model(g, w)


def test_messages_taken_as_parsed_share_nothing_between_reads() -> None:
    tree, raw = _stored_run([message(i) for i in range(60)])
    cache = ValueCache(raw=raw)  # kept across reads, as a thread read again
    first, second = CODEC.decode(tree, cache), CODEC.decode(tree, cache)
    first[1].tool_calls[0]["args"]["prefix"] = "changed"
    assert second[1].tool_calls[0]["args"]["prefix"] == "10.1.0.0/16"
    alone = _decoded(tree, raw, plain=True)  # a read of its own
    alone[5].tool_calls[0]["args"]["prefix"] = "changed"
    assert _decoded(tree, raw, plain=True)[5].tool_calls[0]["args"]["prefix"] == "10.5.0.0/16"
