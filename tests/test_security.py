"""Nothing lost, nothing leaked: rows tampered with behind the saver's back (raw SQL on the
real engines) revive nothing the serializer's policy refuses, run no code, expand to no
more than a read may, and an encrypted saver stores no conversation text in clear."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from helpers import call, cfg, invoke, is_postgres, listing, put, raw, th
from helpers import get_state as state
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel
from storage import build_chat_graph

from langgraph_store_dual.core.thread_model import Removed
from langgraph_store_dual.errors import ConfigError, DecodeError, UnsafeTypeError

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


# -- pickles --------------------------------------------------------------------------------

PICKLING = JsonPlusSerializer(pickle_fallback=True)
PICKLE_KEY = b"k" * 32


def _plant(note: str) -> None:
    SIDE_EFFECTS.append(note)


class Evil:
    """Unpickling it calls `_plant`: what an attacker's pickle would do with os.system."""

    def __reduce__(self) -> tuple:
        return (_plant, ("a tampered pickle ran",))


class Plain:
    """A value msgpack cannot hold: JsonPlusSerializer pickles it when allowed to."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plain) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


def _pickle_envelope(obj: Any, **extra: Any) -> dict:
    import base64
    import pickle

    data = base64.b64encode(pickle.dumps(obj)).decode()
    return {"$t": "serde", "s": "pickle", "b": data, **extra}


@pytest.mark.parametrize("key", [None, PICKLE_KEY])
@pytest.mark.parametrize("where", ["channel_values", "writes"])
async def test_tampered_pickles_run_nothing(
    saver_factory: Any, api: str, key: bytes | None, where: str
) -> None:
    """With pickle_fallback, a pickle planted in a row is refused (UnsafeTypeError) and runs
    nothing: without a pickle_key always, with one unless its signature matches."""
    async with saver_factory(serde=PICKLING) as saver:
        saver.pickle_key = key
        stored, _ = await put(saver, api, "victim", {"x": 1})
        await call(saver, api, "put_writes", stored, [("x", 2)], "task")
        for n, envelope in enumerate(
            [
                _pickle_envelope(Evil()),
                _pickle_envelope(Evil(), k="AAAA"),
                {
                    "$t": "serde",
                    "s": {"$t": "s", "v": ["pickle"]},
                    "b": _pickle_envelope(Evil())["b"],
                },
            ]
        ):
            if where == "channel_values":

                def edit(tree: dict, envelope: dict = envelope) -> dict:
                    tree["channel_values"]["x"] = envelope
                    return tree

                await _edit_json(
                    saver, "checkpoints", "checkpoint", "thread_id = ?", ("victim",), edit
                )
            else:
                await _edit_json(
                    saver,
                    "checkpoint_writes",
                    "writes",
                    "thread_id = ?",
                    ("victim",),
                    lambda tree, envelope=envelope: [[0, "x", envelope]],
                )
            SIDE_EFFECTS.clear()
            for read in reads(saver, api, stored, "victim"):
                with pytest.raises(UnsafeTypeError, match="pickle"):
                    await read()
            assert SIDE_EFFECTS == [], n


async def test_pickles_need_a_key_and_round_trip_with_one(saver_factory: Any, api: str) -> None:
    """A value only pickle can store is refused on put without a pickle_key (ConfigError,
    nothing stored), and round-trips, in snapshots and writes, with one."""
    async with saver_factory(serde=PICKLING) as saver:
        with pytest.raises(ConfigError, match="pickle_key"):
            await put(saver, api, "t", {"x": Plain(1)})
        assert await call(saver, api, "get_tuple", cfg("t")) is None
        saver.pickle_key = PICKLE_KEY
        stored, _ = await put(saver, api, "t", {"x": Plain(1), "y": [Plain(2)] * 3})
        await call(saver, api, "put_writes", stored, [("x", Plain(3))], "task")
        for got in [
            await call(saver, api, "get_tuple", cfg("t")),
            *await listing(saver, api, cfg("t")),
        ]:
            assert got.checkpoint["channel_values"] == {"x": Plain(1), "y": [Plain(2)] * 3}
            assert got.pending_writes == [("task", "x", Plain(3))]
        saver.pickle_key = b"another key, 32 bytes long......"
        with pytest.raises(UnsafeTypeError, match="signature"):
            await call(saver, api, "get_tuple", cfg("t"))


# -- encryption -----------------------------------------------------------------------------


async def _all_text(saver: Any) -> str:
    """Every row of every table of the saver's database, as text."""
    if is_postgres(saver):
        tables = await raw(
            saver,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        rows = [
            r for (t,) in tables for r in await raw(saver, f"SELECT CAST(t AS TEXT) FROM {t} t")
        ]
    else:
        tables = await raw(saver, "SELECT name FROM sqlite_master WHERE type = 'table'")
        rows = [r for (t,) in tables for r in await raw(saver, f"SELECT * FROM {t}")]
    assert len(tables) >= 4 and rows
    return "\n".join(repr(r) for r in rows)


@pytest.mark.parametrize("encrypted", [False, True])
async def test_encrypted_conversation_is_nowhere_in_clear(
    saver_factory: Any, encrypted: bool
) -> None:
    """With EncryptedSerializer, no table holds a word of the conversation (the thread
    gets no title from it); with the default serializer the title is the first message."""
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    serde = (
        EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef") if encrypted else None
    )
    question = "Where is the treasure buried, Captain Flint?"
    async with saver_factory(serde=serde) as saver:
        graph = build_chat_graph(saver, ["Under the skeleton's arm on Spyglass Hill."])
        await invoke(
            graph, {"messages": [("user", question)]}, {"configurable": {"thread_id": "t"}}
        )
        thread = await th(saver, "get", "t")
        text = await _all_text(saver)
        if encrypted:
            assert thread.title is None
            for secret in ("treasure", "Flint", "skeleton", "Spyglass"):
                assert secret not in text
        else:
            assert thread.title == question
            assert "Spyglass" in text
        got = await state(graph, {"configurable": {"thread_id": "t"}})
        assert got.values["messages"][0].content == question


# -- expansion ------------------------------------------------------------------------------


def _refs_text(saver: Any, hashes: list[str]) -> str | None:
    """A `refs` column as the engine stores it."""
    if not hashes:
        return None
    return " ".join(hashes) if is_postgres(saver) else orjson.dumps(hashes).decode()


async def _plant_values(saver: Any, thread_id: str, channel: Any, values: dict) -> None:
    """Store `values` (hash -> tree) and make the thread's checkpoint's channel `x` `channel`."""
    from langgraph_store_dual.core.intern import refs_in

    for h, tree in values.items():
        await raw(
            saver,
            "INSERT INTO checkpoint_values (thread_id, hash, value, refs) VALUES (?, ?, ?, ?)",
            (
                thread_id,
                h,
                orjson.dumps(tree).decode(),
                _refs_text(saver, sorted(set(refs_in(tree)))),
            ),
        )

    def edit(tree: dict) -> dict:
        tree["channel_values"]["x"] = channel
        return tree

    await _edit_json(saver, "checkpoints", "checkpoint", "thread_id = ?", (thread_id,), edit)
    await raw(
        saver,
        "UPDATE checkpoints SET refs = ? WHERE thread_id = ?",
        (_refs_text(saver, sorted(set(refs_in(channel)))), thread_id),
    )


def _fan_out(kind: str, levels: int) -> tuple[Any, dict]:
    """Stored values each referring twice to the one below: they expand to 2**levels leaves."""
    name = [f"{kind}{n:021d}" for n in range(levels + 1)]
    if kind == "r":
        values = {name[0]: {"leaf": "x" * 40}}
        values |= {
            name[n]: {"a": {"$r": name[n - 1]}, "b": {"$r": name[n - 1]}}
            for n in range(1, levels + 1)
        }
        return {"$r": name[levels]}, values
    values = {name[0]: ["x" * 40]}
    values |= {name[n]: [{"$s": name[n - 1]}, {"$s": name[n - 1]}] for n in range(1, levels + 1)}
    return [{"$s": name[levels]}], values


@pytest.mark.parametrize("kind", ["r", "s"])
async def test_fan_out_references_stop_at_the_limit(saver: Any, api: str, kind: str) -> None:
    """Values referring twice to the next (40 levels: 2**40 leaves) are refused with a
    DecodeError naming the limit, by every read; other threads stay readable."""
    await put(saver, api, "other", {"x": ["fine"] * 100})
    stored, _ = await put(saver, api, "victim", {"x": 1})
    channel, values = _fan_out(kind, 40)
    await _plant_values(saver, "victim", channel, values)
    for read in reads(saver, api, stored, "victim"):
        with pytest.raises(DecodeError, match="max_expansion"):
            await read()
    got = await call(saver, api, "get_tuple", cfg("other"))
    assert got.checkpoint["channel_values"]["x"] == ["fine"] * 100


@pytest.mark.parametrize("kind", ["r", "s"])
async def test_expansion_limit_is_the_savers(saver: Any, api: str, kind: str) -> None:
    """Below the limit a fan-out decodes to what it stands for; a saver's `max_expansion`
    moves the limit (here below what 10 levels add)."""
    stored, _ = await put(saver, api, "victim", {"x": 1})
    channel, values = _fan_out(kind, 10)
    await _plant_values(saver, "victim", channel, values)
    got = await call(saver, api, "get_tuple", stored)
    x = got.checkpoint["channel_values"]["x"]
    leaves = orjson.dumps(x).decode().count("x" * 40)
    assert leaves == 2**10
    saver.max_expansion = 10_000
    for read in reads(saver, api, stored, "victim"):
        with pytest.raises(DecodeError, match=r"max_expansion \(10000\)"):
            await read()
    saver.max_expansion = 1_000_000
    got = await call(saver, api, "get_tuple", stored)
    assert got.checkpoint["channel_values"]["x"] == x


# -- malformed input --------------------------------------------------------------------------


def _nested(depth: int, kind: str) -> Any:
    """A value nested `depth` levels deep (built without recursion)."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@pytest.mark.parametrize("depth", [300, 3000])
@pytest.mark.parametrize("kind", ["list", "dict"])
async def test_too_deep_values_are_a_config_error(
    saver: Any, api: str, depth: int, kind: str
) -> None:
    """A value nested deeper than JSON storage holds is refused on put and put_writes, in
    state or metadata, with a ConfigError naming the limit; nothing is stored."""
    deep = _nested(depth, kind)
    if depth > 300 or kind == "dict":  # lists nested 300 deep are stored in pieces (interned)
        with pytest.raises(ConfigError, match="254 levels"):
            await put(saver, api, "state", {"x": deep})
    with pytest.raises(ConfigError, match="254 levels"):
        await put(saver, api, "meta", {"x": 1}, metadata={"step": 0, "deep": deep})
    stored, _ = await put(saver, api, "writes", {"x": 1})
    with pytest.raises(ConfigError, match="254 levels"):
        await call(saver, api, "put_writes", stored, [("x", deep)], "task")
    for thread_id in ("state", "meta"):
        got = await call(saver, api, "get_tuple", cfg(thread_id))
        assert got is None or got.checkpoint["channel_values"]["x"] == deep
    assert (await call(saver, api, "get_tuple", stored)).pending_writes == []


async def test_deep_reference_chains_are_a_decode_error(saver: Any, api: str) -> None:
    """Stored values referring to each other 3000 levels deep: DecodeError, not RecursionError."""
    stored, _ = await put(saver, api, "victim", {"x": 1})
    name = [f"d{n:021d}" for n in range(3001)]
    values = {name[0]: {"leaf": "x" * 40}}
    values |= {name[n]: {"a": {"$r": name[n - 1]}} for n in range(1, 3001)}
    await _plant_values(saver, "victim", {"$r": name[-1]}, values)
    for read in reads(saver, api, stored, "victim"):
        with pytest.raises(DecodeError, match="nested too deeply"):
            await read()


@pytest.mark.parametrize(
    "writes",
    [
        {"abc": 1, "def": 2},
        [{"idx": 0, "channel": "x", "value": 1}],
        [["0", "x", 1]],
        [[0, 5, 1]],
        [[0, "x"]],
        [[0, "x", 1, 2]],
        "abc",
    ],
)
async def test_malformed_writes_rows_are_a_decode_error(saver: Any, api: str, writes: Any) -> None:
    """A writes row that is not `[[index, channel, value], ...]` is a DecodeError, not a
    bogus pending write."""
    stored, _ = await put(saver, api, "victim", {"x": 1})
    await call(saver, api, "put_writes", stored, [("x", 2)], "task")
    await _edit_json(
        saver, "checkpoint_writes", "writes", "thread_id = ?", ("victim",), lambda _: writes
    )
    for read in reads(saver, api, stored, "victim"):
        with pytest.raises(DecodeError, match="writes"):
            await read()


@pytest.mark.parametrize("value", ["{not json", "[1, 2"])
async def test_check_references_lists_malformed_values(saver: Any, api: str, value: str) -> None:
    """A stored value that is not JSON is a problem `check_references` lists (naming it),
    not an exception; the other threads' values are still checked."""
    await put(saver, api, "other", {"x": "y" * 200})
    stored, _ = await put(saver, api, "victim", {"x": "z" * 200})
    ((h,),) = await raw(
        saver, "SELECT hash FROM checkpoint_values WHERE thread_id = ?", ("victim",)
    )
    await raw(
        saver, "UPDATE checkpoint_values SET value = ? WHERE thread_id = ?", (value, "victim")
    )
    for thread_id in ("victim", None):
        problems = await call(saver, api, "check_references", thread_id)
        assert len(problems) == 1 and f"value victim/{h}" in problems[0], problems
        assert "malformed" in problems[0]
    with pytest.raises(DecodeError):
        await call(saver, api, "get_tuple", stored)
    await _plant_missing_ref(saver)
    assert any("missing" in p for p in await call(saver, api, "check_references", None))


async def test_tampered_refs_of_stored_values(saver: Any, api: str) -> None:
    """The refs a stored value lists, tampered: hashes of values nobody stored are looked
    for and ignored (the read needs only what the JSON refers to); on SQLite, where refs
    are a JSON array, one that is not a list of hashes is a DecodeError naming them."""
    stored, _ = await put(saver, api, "victim", {"x": ["y" * 200, "z" * 200]})
    expected = (await call(saver, api, "get_tuple", stored)).checkpoint["channel_values"]
    await raw(
        saver,
        "UPDATE checkpoint_values SET refs = ? WHERE thread_id = ?",
        (_refs_text(saver, ["q" * 22, "w" * 22]), "victim"),
    )
    saver._codec = None  # a new codec and value caches: nothing kept from the read above
    got = await call(saver, api, "get_tuple", stored)
    assert got.checkpoint["channel_values"] == expected
    if is_postgres(saver):
        return
    await raw(
        saver, "UPDATE checkpoint_values SET refs = '[1, 2]' WHERE thread_id = ?", ("victim",)
    )
    saver._codec = None
    with pytest.raises(DecodeError, match="refs"):
        await call(saver, api, "get_tuple", stored)


async def _plant_missing_ref(saver: Any) -> None:
    """Make the thread `other`'s checkpoint refer to a value that is not stored."""
    h = "m" * 22
    await _edit_json(
        saver,
        "checkpoints",
        "checkpoint",
        "thread_id = ?",
        ("other",),
        lambda tree: {**tree, "channel_values": {"x": {"$r": h}}},
    )
    await raw(
        saver,
        "UPDATE checkpoints SET refs = ? WHERE thread_id = ?",
        (_refs_text(saver, [h]), "other"),
    )


@pytest.mark.parametrize("age", [timedelta.max, float("inf"), 1e300, timedelta(days=800_000)])
async def test_ages_beyond_any_clock_are_clamped(saver: Any, api: str, age: Any) -> None:
    """Retention ages beyond what an engine's clock holds delete nothing (clamped to
    MAX_AGE), on both engines."""
    stored, _ = await put(saver, api, "t", {"x": 1})
    await put(saver, api, "t", {"x": 2}, parent=stored["configurable"]["checkpoint_id"])
    for name in ("prune_older_than", "delete_idle_threads"):
        assert await th(saver, name, age) == Removed()
    assert len(await listing(saver, api, cfg("t"))) == 2
