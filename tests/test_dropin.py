"""Drop-in: the official savers' documented usage works on ours with only the import changed.

The snippets below are those of the official `langgraph-checkpoint-sqlite`/`-postgres`
docstrings, run verbatim on ours and, where the result is data, on the official saver too.
PostgreSQL connection and pool patterns (`row_factory=dict_row`, ...) are tested in
tests/test_pg_connections.py.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver as OfficialAsyncSqliteSaver
from langgraph.graph import StateGraph

from langgraph_store_dual import AsyncSqliteSaver, SqliteSaver


def add_one_graph(checkpointer: Any) -> Any:
    builder = StateGraph(int)
    builder.add_node("add_one", lambda x: x + 1)
    builder.set_entry_point("add_one")
    builder.set_finish_point("add_one")
    return builder.compile(checkpointer=checkpointer)


def sqlite_snippets(saver_cls: Any, where: Path) -> list[Any]:
    """The sync SQLite docstring examples; returns what they print."""
    out = []
    conn = sqlite3.connect(str(where / "checkpoints.sqlite"), check_same_thread=False)
    memory = saver_cls(conn)
    graph = add_one_graph(memory)
    config = {"configurable": {"thread_id": "1"}}
    out.append(graph.get_state(config).values)
    graph.invoke(3, config)
    out.append(graph.get_state(config).values)
    conn.close()

    with saver_cls.from_conn_string(":memory:") as memory:
        config = {"configurable": {"thread_id": "1", "checkpoint_ns": ""}}
        checkpoint = {
            "ts": "2024-05-04T06:32:42.235444+00:00",
            "id": "1ef4f797-8335-6428-8001-8a1503f9b875",
            "channel_values": {"key": "value"},
        }
        metadata = {"source": "input", "step": 1, "writes": {"key": "value"}}
        out.append(memory.put(config, checkpoint, metadata, {}))
        got = memory.get_tuple({"configurable": {"thread_id": "1"}})
        out.append((got.checkpoint["channel_values"], got.metadata))
        out.append(len(list(memory.list(config, limit=2))))
        before = {"configurable": {"checkpoint_id": "1ef4f797-8335-6428-8001-8a1503f9b875"}}
        out.append(list(memory.list(config, before=before)))
    return out


def test_sqlite_docstring_examples(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "official").mkdir()
    ours = sqlite_snippets(SqliteSaver, tmp_path / "ours")
    official = sqlite_snippets(OfficialSqliteSaver, tmp_path / "official")
    assert ours == official
    assert ours[1] == 4


async def async_sqlite_snippets(saver_cls: Any, where: Path) -> list[Any]:
    out = []
    async with saver_cls.from_conn_string(str(where / "checkpoints.db")) as memory:
        graph = add_one_graph(memory)
        coro = graph.ainvoke(1, {"configurable": {"thread_id": "thread-1"}})
        out.append(await asyncio.gather(coro))

    async with aiosqlite.connect(str(where / "raw.db")) as conn:
        saver = saver_cls(conn)
        config = {"configurable": {"thread_id": "1", "checkpoint_ns": ""}}
        checkpoint = {
            "ts": "2023-05-03T10:00:00Z",
            "data": {"key": "value"},
            "id": "0c62ca34-ac19-445d-bbb0-5b4984975b2a",
            "channel_values": {},
        }
        out.append(await saver.aput(config, checkpoint, {}, {}))
        await saver.setup()  # awaited, as in every official example
        got = await saver.aget_tuple(config)
        out.append((got.checkpoint["data"], got.checkpoint["ts"]))
    return out


async def test_async_sqlite_docstring_examples(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "official").mkdir()
    ours = await async_sqlite_snippets(AsyncSqliteSaver, tmp_path / "ours")
    official = await async_sqlite_snippets(OfficialAsyncSqliteSaver, tmp_path / "official")
    assert ours == official
    assert ours[0] == [2]


@pytest.mark.parametrize("flavour", ["sqlite-async", "postgres-async"], indirect=True)
async def test_async_savers_setup_is_awaitable(saver_factory: Any) -> None:
    async with saver_factory(auto_setup=False) as saver:
        pending = saver.setup()
        assert inspect.isawaitable(pending)
        await pending
        await saver.setup()  # idempotent
        await saver.asetup()  # our alias
        graph = add_one_graph(saver)
        assert await graph.ainvoke(1, {"configurable": {"thread_id": "t"}}) == 2


@pytest.mark.parametrize("flavour", ["sqlite-sync", "postgres-sync"], indirect=True)
async def test_sync_savers_setup_blocks(saver_factory: Any) -> None:
    async with saver_factory(auto_setup=False) as saver:
        assert not saver.is_setup
        assert saver.setup() is None
        assert saver.is_setup
        graph = add_one_graph(saver)
        assert await asyncio.to_thread(graph.invoke, 1, {"configurable": {"thread_id": "t"}}) == 2


async def test_list_before_holds_only_a_checkpoint_id(saver: Any) -> None:
    """LangGraph's replay calls `list(config, before={"configurable": {"checkpoint_id": X}})`."""
    graph = add_one_graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(3):
        await graph.ainvoke(n, config)
    history = [t async for t in saver.alist(config)]
    middle = history[2].config["configurable"]["checkpoint_id"]
    before = {"configurable": {"checkpoint_id": middle}}
    older = [t async for t in saver.alist(config, before=before)]
    assert [t.config for t in older] == [t.config for t in history[3:]]
    sync_older = await asyncio.to_thread(lambda: list(saver.list(config, before=before, limit=1)))
    assert [t.config for t in sync_older] == [history[3].config]


async def test_encrypted_serializer(saver_factory: Any) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef")
    async with saver_factory(serde=serde) as saver:
        graph = add_one_graph(saver)
        config = {"configurable": {"thread_id": "secret-thread"}}
        assert await graph.ainvoke(41, config) == 42
        assert (await graph.aget_state(config)).values == 42
        history = [s.values async for s in graph.aget_state_history(config)]
    reference = add_one_graph(InMemorySaver(serde=serde))
    await reference.ainvoke(41, config)
    assert history == [s.values async for s in reference.aget_state_history(config)]
    assert history[:2] == [42, 41]


async def test_with_allowlist_copy_keeps_working_and_its_policy(saver: Any) -> None:
    """LangGraph copies a saver through `with_allowlist` under a strict msgpack policy."""
    strict = saver.with_allowlist([("collections", "OrderedDict")])
    assert strict is saver  # the default serializer allows everything: nothing to derive

    saver.serde = JsonPlusSerializer(allowed_msgpack_modules=[("decimal", "Decimal")])
    clone = saver.with_allowlist([("collections", "OrderedDict")])
    assert clone is not saver and type(clone) is type(saver)
    policy = clone.serde._allowed_msgpack_modules
    assert ("collections", "OrderedDict") in policy and ("decimal", "Decimal") in policy
    assert ("collections", "OrderedDict") not in saver.serde._allowed_msgpack_modules
    assert clone.threads.saver is clone and saver.threads.saver is saver
    graph = add_one_graph(clone)
    config = {"configurable": {"thread_id": "t"}}
    assert await graph.ainvoke(1, config) == 2
    assert (await add_one_graph(saver).aget_state(config)).values == 2
    thread = clone.threads.get("t")
    thread = await thread if inspect.isawaitable(thread) else thread
    assert thread is not None and thread.thread_id == "t"


def test_importing_the_package_imports_no_driver() -> None:
    code = (
        "import sys, langgraph_store_dual as l; "
        "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'aiosqlite') if m in sys.modules)); "
        "l.SqliteSaver; print('psycopg' in sys.modules); "
        "l.PostgresSaver; print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "False", "True"]


async def test_security_settings_are_constructor_keywords(saver_factory: Any) -> None:
    key = b"k" * 32
    async with saver_factory(pickle_key=key, max_expansion=123_456) as saver:
        assert saver.pickle_key == key and saver.max_expansion == 123_456


def test_postgres_saver_takes_a_pipeline_as_the_official_one(pg_clean_url: str) -> None:
    """`from_conn_string(pipeline=True)` of the official saver: `cls(conn, pipe)`."""
    import psycopg
    from psycopg.rows import dict_row

    from langgraph_store_dual import PostgresSaver

    with psycopg.connect(
        pg_clean_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        PostgresSaver(conn).setup()
        with conn.pipeline() as pipe:
            saver = PostgresSaver(conn, pipe)
            assert saver.pipe is pipe and saver.supports_pipeline
            graph = add_one_graph(saver)
            config = {"configurable": {"thread_id": "t"}}
            assert graph.invoke(1, config) == 2
            assert [s.values for s in graph.get_state_history(config)][:2] == [2, 1]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_strict_msgpack_mode(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """With LANGGRAPH_STRICT_MSGPACK set, LangGraph compiles the graph on a copy of the
    saver made by `with_allowlist`: it works, and the state's own types come back."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    if engine == "postgres":
        url = request.getfixturevalue("pg_clean_url")
    env = {**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true"}
    app = Path(__file__).with_name("strict_msgpack_app.py")
    proc = subprocess.run(
        [sys.executable, str(app), url], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0::2] == ["ok", "True"]
