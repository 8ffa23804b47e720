"""Thread search as LangGraph Platform offers it: ids, time ranges, sorts with keyset
cursors, `count` with the same filters, and `stats` by kind of storage and by channel; on
every saver flavour, and PostgreSQL's plans for a deep page of a user's threads."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg
import pytest
from helpers import chat_graph, invoke, is_postgres, raw, th
from helpers import run_cfg as conf
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from pg_server import _create_database, _drop_database, with_dbname
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langgraph_store_dual import AsyncPostgresSaver, ConfigError, PostgresSaver, ThreadManager
from langgraph_store_dual.core import thread_model as tm
from langgraph_store_dual.core import threads as thread_ops
from langgraph_store_dual.core.intern import refs_in
from langgraph_store_dual.core.search import Search, sort
from langgraph_store_dual.postgres.dialect import POSTGRES

IDS = [f"t{i}" for i in range(6)]
UTC = timezone.utc


async def six_threads(saver: Any) -> None:
    """t0..t5: ana owns the even ones, bob the odd; t0-t2 are team red, t3-t5 blue.
    Created on 2020-01-01 .. 01-05 in id order (t4 and t5 at the same instant); last
    active in the reverse order, t0 latest (2021-01-06), t5 earliest (2021-01-01)."""
    for i, tid in enumerate(IDS):
        user = "ana" if i % 2 == 0 else "bob"
        meta = {"team": "red" if i < 3 else "blue"}
        await th(saver, "create", thread_id=tid, user_id=user, metadata=meta)
        created = f"2020-01-0{min(i, 4) + 1}T00:00:00.000Z"
        updated = f"2021-01-0{6 - i}T12:00:00.000Z"
        await raw(
            saver,
            "UPDATE threads SET created_at = ?, updated_at = ? WHERE thread_id = ?",
            (created, updated, tid),
        )


async def ids(saver: Any, **filters: Any) -> list[str]:
    """Every thread `list` finds, page by page (`limit` per page, default 2)."""
    found: list[str] = []
    cursor = None
    filters.setdefault("limit", 2)
    while True:
        page = await th(saver, "list", cursor=cursor, **filters)
        found += [x.thread_id for x in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_filters_by_ids_and_time_ranges_and_counts_alike(saver: Any) -> None:
    await six_threads(saver)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"thread_ids": ["t3", "t1", "missing"]}, ["t1", "t3"]),
        ({"thread_ids": []}, []),
        ({"created_after": datetime(2020, 1, 3, tzinfo=UTC)}, ["t2", "t3", "t4", "t5"]),
        ({"created_before": date(2020, 1, 3)}, ["t0", "t1"]),
        (
            {"created_after": date(2020, 1, 2), "created_before": date(2020, 1, 4)},
            ["t1", "t2"],
        ),
        ({"updated_after": datetime(2021, 1, 5, 12, tzinfo=UTC)}, ["t0", "t1"]),
        ({"updated_before": datetime(2021, 1, 2, 12, tzinfo=UTC)}, ["t5"]),
        (
            {
                "updated_after": datetime(2021, 1, 2, 12, 0, tzinfo=UTC),  # inclusive
                "user_id": "ana",
                "metadata": {"team": "blue"},
            },
            ["t4"],
        ),
        ({"thread_ids": IDS, "status": "archived"}, []),
    ]
    for filters, want in cases:
        assert sorted(await ids(saver, **filters)) == want, filters
        assert await th(saver, "count", **filters) == len(want), filters
    # a time in another zone is the same instant
    paris = datetime(2020, 1, 3, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert await th(saver, "count", created_after=paris) == 4


@pytest.mark.parametrize(
    ("by", "order", "want"),
    [
        ("updated_at", "desc", IDS),
        ("updated_at", "asc", IDS[::-1]),
        ("created_at", "asc", IDS),  # t4 and t5 tie: by thread id
        ("created_at", "desc", IDS[::-1]),
    ],
)
async def test_each_sort_pages_through_in_order(
    saver: Any, by: str, order: str, want: list[str]
) -> None:
    await six_threads(saver)
    for limit in (1, 4, 10):
        got = await ids(saver, sort_by=by, sort_order=order, limit=limit)
        assert got == want, (limit, got)
    red = await ids(saver, sort_by=by, sort_order=order, limit=1, metadata={"team": "red"})
    assert red == [x for x in want if x in ("t0", "t1", "t2")]
    ana = await ids(saver, sort_by=by, sort_order=order, user_id="ana", limit=1)
    assert ana == [x for x in want if int(x[1]) % 2 == 0]


async def test_a_cursor_belongs_to_its_sort(saver: Any) -> None:
    await six_threads(saver)
    page = await th(saver, "list", sort_by="created_at", sort_order="asc", limit=2)
    assert [x.thread_id for x in page.items] == ["t0", "t1"]
    with pytest.raises(ConfigError, match="sorted by created_at asc, not updated_at desc"):
        await th(saver, "list", cursor=page.next_cursor)
    with pytest.raises(ConfigError, match="sorted by created_at asc, not created_at desc"):
        await th(saver, "list", cursor=page.next_cursor, sort_by="created_at")
    with pytest.raises(ConfigError, match="malformed cursor"):
        await th(saver, "list", cursor="bm90IGEgY3Vyc29y")
    # the default order's cursors keep their earlier form (stamp, thread id)
    first = await th(saver, "list", limit=2)
    raw_cursor = first.next_cursor + "=" * (-len(first.next_cursor) % 4)
    assert len(orjson.loads(base64.urlsafe_b64decode(raw_cursor))) == 2
    second = await th(saver, "list", limit=2, cursor=first.next_cursor)
    assert [x.thread_id for x in second.items] == ["t2", "t3"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sort_by": "title"}, "sort_by must be one of updated_at, created_at"),
        ({"sort_order": "up"}, "sort_order must be one of desc, asc"),
        ({"thread_ids": "t1"}, "thread_ids must be a list of ids"),
        ({"thread_ids": [None]}, "thread_id is required"),
        ({"created_after": datetime(2020, 1, 1)}, "created_after must be timezone-aware"),
        ({"updated_before": "2020-01-01"}, "updated_before must be a datetime or a date"),
    ],
)
async def test_bad_search_arguments_are_named(saver: Any, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await th(saver, "list", **kwargs)
    if "sort_by" not in kwargs and "sort_order" not in kwargs:
        with pytest.raises(ConfigError, match=message):
            await th(saver, "count", **kwargs)


async def channel_bytes(saver: Any, thread_id: str) -> dict[str, int]:
    """`stats().channel_bytes` computed here from the rows: each channel's JSON in each
    snapshot, and the stored values it leads to (once per channel)."""
    pg = is_postgres(saver)
    size = "pg_column_size(value)" if pg else "length(CAST(value AS BLOB))"
    refs = "to_json(string_to_array(refs, ' '))::text" if pg else "refs"
    values = {
        h: (n, orjson.loads(r) if r else [])
        for h, r, n in await raw(
            saver,
            f"SELECT hash, {refs}, {size} FROM checkpoint_values WHERE thread_id = ?",
            (thread_id,),
        )
    }
    docs = await raw(
        saver, "SELECT CAST(checkpoint AS TEXT) FROM checkpoints WHERE thread_id = ?", (thread_id,)
    )
    inline: dict[str, int] = {}
    reached: dict[str, set[str]] = {}
    for (doc,) in docs:
        for channel, value in orjson.loads(doc)["channel_values"].items():
            inline[channel] = inline.get(channel, 0) + len(orjson.dumps(value))
            todo = list(refs_in(value))
            seen = reached.setdefault(channel, set())
            while todo:
                h = todo.pop()
                if h not in seen:
                    seen.add(h)
                    todo += values[h][1]
    return {ch: inline[ch] + sum(values[h][0] for h in reached[ch]) for ch in inline}


async def test_stats_break_storage_down(saver: Any) -> None:
    graph = chat_graph(saver)
    for turn in range(20):
        text = f"turn {turn}: " + "a long question about the weather " * 10
        await invoke(graph, {"messages": [HumanMessage(text, id=f"h-{turn}")]}, conf("s"))
    stats = await th(saver, "stats", "s")
    assert stats.bytes == stats.checkpoint_bytes + stats.value_bytes + stats.write_bytes
    assert stats.checkpoint_bytes > 0 and stats.value_bytes > 0 and stats.write_bytes > 0
    assert stats.channel_bytes == await channel_bytes(saver, "s")
    assert {"messages", "__start__"} <= stats.channel_bytes.keys()
    # every stored value belongs to a channel: the messages (a prefix chain) and the input
    assert sum(stats.channel_bytes.values()) >= stats.value_bytes
    assert stats.channel_bytes["messages"] > stats.channel_bytes["__start__"]
    empty = await th(saver, "create", thread_id="empty")
    bare = await th(saver, "stats", empty.thread_id)
    assert (bare.bytes, bare.channel_bytes, bare.checkpoints) == (0, {}, 0)


# -- PostgreSQL plans ----------------------------------------------------------------------

THREADS = 20_000  # half of them owned by "big", the rest by 50 users of 200 threads each
DEEP = 5_000  # the position of the deep page in big's threads


def _plan(conn: psycopg.Connection, sql: str, params: Any) -> str:
    rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(r[0] for r in rows)


def _full_sort(plan: str) -> bool:
    """Whether a plan sorts rows other than within the groups an index gives in order
    (an Incremental Sort)."""
    return any(re.match(r"\s*(->\s+)?Sort\s+\(", line) for line in plan.splitlines())


@pytest.mark.parametrize(
    ("by", "order", "index"),
    [
        ("updated_at", "desc", "threads_user_recent"),
        ("updated_at", "asc", "threads_user_recent"),
        ("created_at", "desc", "threads_user_created"),
        ("created_at", "asc", "threads_user_created"),
    ],
)
def test_a_deep_page_of_a_users_threads_reads_an_index(
    pg_clean_url: str, by: str, order: str, index: str
) -> None:
    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        saver.setup()
        with psycopg.connect(pg_clean_url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO threads (thread_id, user_id, created_at, updated_at)
                SELECT 'p' || g, CASE WHEN g %% 2 = 0 THEN 'big' ELSE 'user-' || (g %% 100) END,
                now() - g * interval '1 minute',
                now() - ((g * 7919) %% %s) * interval '13 seconds'
                FROM generate_series(1, %s) g""",
                (THREADS, THREADS),
            )
            conn.execute("ANALYZE threads")
            order_of = sort(by, order)
            listed = f"FROM threads WHERE user_id = %s {order_of.order_by}"
            (at, tid), *_ = conn.execute(
                f"SELECT {by}, thread_id {listed} OFFSET {DEEP} LIMIT 1", ("big",)
            ).fetchall()
            want = conn.execute(f"SELECT thread_id {listed} OFFSET {DEEP + 1} LIMIT 50", ("big",))
            want_ids = [r[0] for r in want.fetchall()]
        cursor = tm.encode_cursor(at, tid, order_of.name)
        page = ThreadManager(saver).list(
            user_id="big", sort_by=by, sort_order=order, cursor=cursor, limit=50
        )
        assert [x.thread_id for x in page.items] == want_ids
        plans = {}
        with psycopg.connect(pg_clean_url) as conn:
            for user in ("big", "user-7", None):
                op = thread_ops.page(
                    POSTGRES, user, None, None, None, 50, cursor, None, Search(), order_of
                )
                stmt = next(op)
                plans[user] = _plan(conn, stmt.sql, stmt.params)
    # a deep page of a user owning half the threads: an index read in order from the
    # cursor on (theirs, or everyone's when every other row is theirs), nothing sorted
    big = plans["big"]
    assert "Index Scan" in big and "Seq Scan" not in big and not _full_sort(big), big
    # a user with few threads: their index from the cursor on (the planner may sort those)
    few = plans["user-7"]
    assert index in few and "Seq Scan" not in few, few
    assert re.search(r"Index Cond: \(\(user_id = 'user-7'::text\) AND", few), few
    # everyone's threads
    assert "Seq Scan" not in plans[None] and not _full_sort(plans[None]), plans[None]


# -- PostgreSQL: stats without JIT -----------------------------------------------------

#: Every statement past `jit_above_cost` (all of them) and its plan sent to the client.
JIT_EVERYWHERE = {
    "jit": "on",
    "jit_above_cost": "0",
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_level": "notice",
}
#: The statements of `stats`, as psycopg sends them.
STATS_SQL = [
    sql.replace("%(thread_id)s", "$1")
    for sql in (POSTGRES.threads.stats, POSTGRES.select_channel_bytes)
]


@pytest.fixture(scope="module")
def jit_url(pg_server_url: str) -> Iterator[str]:
    """A database of its own (dropped after the module) in which every statement would
    be JIT-compiled and every plan reaches the client as a notice (auto_explain), with
    a thread "j" of two checkpoints, one of them with an interned value."""
    name = f"lgsd_jit_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error:
            pytest.skip("the server has no auto_explain")
    _create_database(pg_server_url, name)
    try:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for key, value in JIT_EVERYWHERE.items():
                conn.execute(f"ALTER DATABASE {name} SET {key} = '{value}'")
        url = with_dbname(pg_server_url, name)
        with psycopg.connect(url) as conn:
            if not conn.execute("SELECT pg_jit_available()").fetchall()[0][0]:
                pytest.skip("the server has no JIT")
        with PostgresSaver.from_conn_string(url) as saver:
            config: Any = {"configurable": {"thread_id": "j", "checkpoint_ns": ""}}
            for text in ("hello", "a long message " * 40):
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"messages": [text]}
                config = saver.put(config, checkpoint, {}, {})
        yield url
    finally:
        _drop_database(pg_server_url, name)


def _stats_plans(notices: list[str]) -> list[str]:
    """The plans auto_explain sent of the statements of `stats`."""
    return [n for n in notices for sql in STATS_SQL if f"Query Text: {sql}\n" in n]


def test_the_jit_database_compiles_the_stats_statements(jit_url: str) -> None:
    notices: list[str] = []
    with psycopg.connect(jit_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for sql in STATS_SQL:
            conn.execute(sql.replace("$1", "%(thread_id)s"), {"thread_id": "j"})
    plans = _stats_plans(notices)
    assert len(plans) == 2 and all("JIT:" in p for p in plans), plans


@asynccontextmanager
async def _saver(api: str, form: str, url: str, notices: list[str]) -> AsyncIterator[Any]:
    """A PostgreSQL saver of `api` on a connection of `form`, each of its connections'
    notices kept in `notices`; for a connection of the caller's, the saver and it."""

    def watch(conn: Any) -> None:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))

    async def awatch(conn: Any) -> None:
        watch(conn)

    sync = api == "sync"
    if form == "url":  # a pool of one connection: the one watched
        options = {"pool_min_size": 1, "pool_max_size": 1}
        if sync:
            with PostgresSaver.from_conn_string(url, **options) as saver:
                with saver.conn.connection() as conn:
                    watch(conn)
                yield saver, None
        else:
            async with AsyncPostgresSaver.from_conn_string(url, **options) as saver:
                async with saver.conn.connection() as conn:
                    watch(conn)
                yield saver, None
    elif form == "pool":
        if sync:
            with ConnectionPool(url, min_size=1, configure=watch) as pool:
                yield PostgresSaver(pool), None
        else:
            async with AsyncConnectionPool(url, min_size=1, configure=awatch) as apool:
                yield AsyncPostgresSaver(apool), None
    else:
        autocommit = form == "autocommit"
        if sync:
            with psycopg.connect(url, autocommit=autocommit) as conn:
                watch(conn)
                yield PostgresSaver(conn), conn
        else:
            async with await psycopg.AsyncConnection.connect(url, autocommit=autocommit) as aconn:
                watch(aconn)
                yield AsyncPostgresSaver(aconn), aconn


async def _jit_of(conn: Any) -> tuple[Any, str]:
    """(transaction status, jit setting) of a connection, sync or async."""
    if isinstance(conn, psycopg.AsyncConnection):
        rows = await (await conn.execute("SHOW jit")).fetchall()
    else:
        rows = conn.execute("SHOW jit").fetchall()
    return conn.info.transaction_status, rows[0][0]


@pytest.mark.parametrize("form", ["url", "pool", "autocommit", "in_transaction"])
async def test_stats_statements_are_not_jit_compiled(jit_url: str, api: str, form: str) -> None:
    """`stats` runs its statements with JIT off, whatever the planner estimates, on every
    kind of connection, and leaves the caller's connection (and open transaction) with
    its own setting."""
    notices: list[str] = []
    async with _saver(api, form, jit_url, notices) as (saver, conn):
        await th(saver, "get", "j")  # the schema checked
        before = None
        if conn is not None:
            if form == "in_transaction":
                await _jit_of(conn)  # opens the caller's transaction
            before = await _jit_of(conn)
        notices.clear()
        stats = await th(saver, "stats", "j")
        if conn is not None:
            assert await _jit_of(conn) == before
    assert stats.checkpoints == 2 and stats.value_bytes > 0
    assert stats.channel_bytes["messages"] > stats.value_bytes
    plans = _stats_plans(notices)
    assert len(plans) == 2 and not [p for p in plans if "JIT:" in p], plans
