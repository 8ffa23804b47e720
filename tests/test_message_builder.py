"""`codec.messages.builder`: a stored message rebuilt without pydantic's validation is the
very message validation would build, and anything validation would change or refuse is
left to validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from helpers import assert_identical
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
from pydantic import PrivateAttr, field_validator, model_validator

from langgraph_store_dual.codec import TAG, decode_plain, encode_plain
from langgraph_store_dual.codec.messages import builder

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
