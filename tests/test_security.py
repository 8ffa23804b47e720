"""Nothing lost, nothing leaked: rows tampered with behind the saver's back (raw SQL on the
real engines) revive nothing the serializer's policy refuses, run no code, expand to no
more than a read may, and an encrypted saver stores no conversation text in clear."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel
from test_contract import call, cfg, is_postgres, listing, put, raw
from test_threads import th

from langgraph_store_dual.errors import UnsafeTypeError

STRICT = JsonPlusSerializer(allowed_msgpack_modules=None)

#: Side effects of stored data that must never happen.
SIDE_EFFECTS: list[str] = []


class Canary(BaseModel):
    """A model whose revival runs code (`model_post_init`)."""

    note: str = ""

    def model_post_init(self, context: Any) -> None:
        SIDE_EFFECTS.append(f"Canary({self.note!r}) revived")


CANARY = {"$t": "pyd", "c": f"{__name__}:Canary", "v": {"note": "from a tampered row"}}


async def _edit_json(saver: Any, table: str, column: str, where: str, params: tuple, edit) -> None:
    """Rewrite one JSON column of the rows `where` selects with `edit(tree)`."""
    rows = await raw(saver, f"SELECT CAST({column} AS TEXT) FROM {table} WHERE {where}", params)
    assert rows, f"no {table} row {params}"
    for (text,) in rows:
        tree = edit(orjson.loads(text))
        cast = {"metadata": "JSONB", "checkpoint": "JSON", "writes": "JSON"}.get(column, "TEXT")
        value = f"CAST(? AS {cast})" if is_postgres(saver) else "?"
        await raw(
            saver,
            f"UPDATE {table} SET {column} = {value} WHERE {where} AND CAST({column} AS TEXT) = ?",
            (orjson.dumps(tree).decode(), *params, text),
        )


def reads(saver: Any, api: str, stored: dict, thread_id: str) -> list:
    """Every way to read a thread's checkpoint: by id, latest, its list, all threads' list."""
    return [
        lambda: call(saver, api, "get_tuple", stored),
        lambda: call(saver, api, "get_tuple", cfg(thread_id)),
        lambda: listing(saver, api, cfg(thread_id)),
        lambda: listing(saver, api, None),
    ]


def _in_metadata(tree: dict) -> dict:
    return {**tree, "planted": CANARY}


def _in_versions_seen(tree: dict) -> dict:
    tree["versions_seen"]["node"]["x"] = CANARY
    return tree


def _in_channel_versions(tree: dict) -> dict:
    tree["channel_versions"]["x"] = CANARY
    return tree


def _in_writes(tree: list) -> list:
    return [[0, "x", CANARY]]


PLACES = {
    "metadata": ("checkpoints", "metadata", _in_metadata),
    "versions_seen": ("checkpoints", "checkpoint", _in_versions_seen),
    "channel_versions": ("checkpoints", "checkpoint", _in_channel_versions),
    "writes": ("checkpoint_writes", "writes", _in_writes),
}


@pytest.mark.parametrize("place", list(PLACES))
async def test_strict_policy_applies_to_every_decoded_column(
    saver_factory: Any, api: str, place: str
) -> None:
    """With a strict serializer, a pydantic envelope planted in any decoded column is
    refused (UnsafeTypeError) by get_tuple and list, and the model's code never runs."""
    table, column, edit = PLACES[place]
    async with saver_factory(serde=STRICT) as saver:
        stored, _ = await put(saver, api, "victim", {"x": 1})
        await call(saver, api, "put_writes", stored, [("x", 2)], "task")
        await _edit_json(saver, table, column, "thread_id = ?", ("victim",), edit)
        SIDE_EFFECTS.clear()
        for read in reads(saver, api, stored, "victim"):
            with pytest.raises(UnsafeTypeError):
                await read()
        assert SIDE_EFFECTS == []


async def test_thread_metadata_is_never_revived(saver: Any, api: str) -> None:
    """Thread metadata is plain JSON: an envelope planted there comes back as the dict it is."""
    await put(saver, api, "victim", {"x": 1})
    rows = await raw(
        saver, "SELECT CAST(metadata AS TEXT) FROM threads WHERE thread_id = ?", ("victim",)
    )
    assert rows
    cast = "CAST(? AS JSONB)" if is_postgres(saver) else "?"
    await raw(
        saver,
        f"UPDATE threads SET metadata = {cast} WHERE thread_id = ?",
        (orjson.dumps({"planted": CANARY}).decode(), "victim"),
    )
    SIDE_EFFECTS.clear()
    thread = await th(saver, "get", "victim")
    assert thread.metadata == {"planted": CANARY}
    assert SIDE_EFFECTS == []
