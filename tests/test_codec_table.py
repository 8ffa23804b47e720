"""The codec package's structure: one type table drives encoding, decoding and interning,
and one rule says which text is stored as is."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

import langgraph_store_dual.codec as codec
from langgraph_store_dual.codec import decode, encode, encode_classes, table
from langgraph_store_dual.codec.syntax import split_unstorable, storable


def test_each_tag_is_one_row() -> None:
    tags = [row.tag for row in table.ROWS]
    assert len(tags) == len(set(tags))
    assert set(decode.DECODERS) == set(tags)


def test_every_form_is_implemented_both_ways() -> None:
    forms = set(get_args(table.Form))
    assert {row.form for row in table.ROWS} == forms
    assert set(decode.FORMS) == forms
    encoded = {row.form for row in table.ROWS if row.types or row.langgraph or row.kind}
    assert encoded <= set(encode.FORMS) | set(encode_classes._FORMS)


def test_encoders_are_derived_from_the_table() -> None:
    for row in table.ROWS:
        for cls in row.types:
            assert cls in encode.ENCODERS, (row.tag, cls)
    assert {row.langgraph for row in table.ROWS if row.langgraph} == {
        "Send",
        "Interrupt",
        "Command",
        "TimeoutPolicy",
    }
    assert [row.tag for row in table.USER_CLASSES] == ["enum", "pyd", "pyd1", "dc", "nt"]


def test_interning_looks_into_the_envelopes_it_always_did() -> None:
    # which fields are stored apart is part of the stored format (core.intern)
    expected = {
        "msg": frozenset({"type"}),
        "map": frozenset({"$m", "$o"}),
        **dict.fromkeys(("doc", "delta", "send", "intr", "cmd", "tpol"), frozenset()),
        **dict.fromkeys(("tup", "set", "fset", "deq"), frozenset()),
        **{tag: frozenset({"c", "u"}) for tag in ("pyd", "pyd1", "dc", "nt", "enum")},
    }
    assert expected == codec.OPEN_ENVELOPES


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("", True),
        ("plain", True),
        ("é😀", True),
        ("a\x00", False),
        ("é\x00", False),
        ("\ud800", False),
        ("x\udfff", False),
    ],
)
def test_storable_text(text: str, ok: bool) -> None:
    assert storable(text) is ok
    assert (codec.encode_plain(text) == text) is ok


ANY_CHAR = st.characters(codec=None, exclude_categories=())


@given(st.text(st.one_of(ANY_CHAR, st.sampled_from(["\x00", "\ud800", "\udfff"]))))
def test_splitting_refuses_what_storable_refuses(text: str) -> None:
    parts = split_unstorable(text)
    assert storable(text) is all(type(p) is str for p in parts)
    assert all(storable(p) for p in parts if type(p) is str)
    assert "".join(p if isinstance(p, str) else chr(p) for p in parts) == text


def test_the_names_other_modules_import() -> None:
    for name in (
        "MAP_ORDER", "MAP_PAIRS", "TAG", "REF", "SPLICE", "JsonCodec", "ValueCache",
        "decode_plain", "encode_plain", "MAX_EXPANSION", "EXPANSION_RATIO", "PICKLE",
        "MIN_PICKLE_KEY", "check_pickle_key",
    ):  # fmt: skip
        assert hasattr(codec, name), name
