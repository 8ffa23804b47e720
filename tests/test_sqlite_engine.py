"""SQLite only: readable JSON, WAL, several processes on one file, `sqlite:` URLs."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from storage import build_chat_graph

from langgraph_store_dual import AsyncSqliteSaver, ConfigError, SqliteSaver, from_url
from langgraph_store_dual.sqlite import savers as sqlite_savers
from langgraph_store_dual.sqlite.dialect import SQLITE
from langgraph_store_dual.urls import redact

SPAWN = multiprocessing.get_context("spawn")
PROCESS_TIMEOUT = 120
#: schema_version after setup() on an empty database.
ALL_VERSIONS = [(v,) for v in range(1, len(SQLITE.migrations) + 1)]


# --------------------------------------------------------------------------------------
# Readable JSON
# --------------------------------------------------------------------------------------


# The view shows snapshots with their stored values in place (see README, "Storage").
LAST_CONTENT = [
    "SELECT json_extract(checkpoint, '$.channel_values.messages[#-1].content') "
    "FROM checkpoints_expanded WHERE thread_id = ? ORDER BY thread_ts DESC LIMIT 1",
    "SELECT checkpoint ->> '$.channel_values.messages[#-1].content' "
    "FROM checkpoints_expanded WHERE thread_id = ? ORDER BY thread_ts DESC LIMIT 1",
    "SELECT json_extract(m.value, '$.content') FROM checkpoints_expanded c, "
    "json_each(c.checkpoint, '$.channel_values.messages') m WHERE c.thread_id = ? "
    "AND c.thread_ts = (SELECT max(thread_ts) FROM checkpoints WHERE thread_id = ?) "
    "ORDER BY m.key DESC LIMIT 1",
]


def _params(sql: str, thread_id: str) -> tuple:
    return (thread_id,) * sql.count("?")


def test_plain_sql_reads_a_chat_graphs_messages(tmp_path: Path) -> None:
    from langchain_core.messages import HumanMessage

    path = str(tmp_path / "chat.db")
    with SqliteSaver.from_conn_string(path) as saver:
        graph = build_chat_graph(saver, ["Hello, I am a fake model.", "Still fake: 2 + 2 = 4"])
        config = {"configurable": {"thread_id": "chat-1"}}
        graph.invoke({"messages": [HumanMessage("hi")]}, config)
        graph.invoke({"messages": [HumanMessage("what is 2 + 2?")]}, config)
        assert graph.get_state(config).values["messages"][-1].content == "Still fake: 2 + 2 = 4"

    # any SQLite client, without the package
    with sqlite3.connect(path) as conn:
        for sql in LAST_CONTENT:
            assert conn.execute(sql, _params(sql, "chat-1")).fetchall() == [
                ("Still fake: 2 + 2 = 4",)
            ], sql
        rows = conn.execute(
            "SELECT json_extract(checkpoint, '$.channel_values.messages[0].content'), "
            "json_extract(checkpoint, '$.channel_values.messages[#-1].type'), "
            "json_array_length(checkpoint, '$.channel_values.messages'), "
            "metadata ->> '$.source', metadata ->> '$.step' "
            "FROM checkpoints_expanded WHERE thread_id = 'chat-1' ORDER BY thread_ts DESC LIMIT 1"
        ).fetchall()
        assert rows == [("hi", "ai", 4, "loop", 4)]
        # the human turns are readable from the input writes too, one write per row
        inputs = conn.execute(
            "SELECT json_extract(value, '$[0].content') FROM checkpoint_writes_flat "
            "WHERE thread_id = 'chat-1' AND channel = 'messages' "
            "AND json_extract(value, '$[0].type') = 'human' ORDER BY thread_ts"
        ).fetchall()
        assert inputs == [("hi",), ("what is 2 + 2?",)]


async def test_plain_sql_reads_an_async_chat_graph(tmp_path: Path) -> None:
    from langchain_core.messages import HumanMessage

    path = str(tmp_path / "achat.db")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        graph = build_chat_graph(saver, ["async reply"])
        await graph.ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "a"}}
        )
    with sqlite3.connect(path) as conn:
        for sql in LAST_CONTENT:
            assert conn.execute(sql, _params(sql, "a")).fetchall() == [("async reply",)], sql


# --------------------------------------------------------------------------------------
# WAL and busy timeout
# --------------------------------------------------------------------------------------


def _file_is_wal(path: Path) -> bool:
    """Bytes 18-19 of the database header are 2 when the file is in WAL mode."""
    header = path.read_bytes()[:100]
    return header[:16] == b"SQLite format 3\x00" and header[18] == 2 and header[19] == 2


def test_sync_saver_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert _file_is_wal(path)
    with sqlite3.connect(path) as other:  # persistent: any later connection sees WAL
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_async_saver_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "awal.db"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.asetup()
        async with saver.conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with saver.conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] >= 1000
    assert _file_is_wal(path)


async def test_url_savers_use_wal(tmp_path: Path) -> None:
    with from_url(f"sqlite:///{tmp_path}/u.db") as saver:
        saver.setup()
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    async with from_url(f"sqlite:///{tmp_path}/au.db") as asaver:
        await asaver.asetup()
        async with asaver.conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] >= 1000
    assert _file_is_wal(tmp_path / "u.db") and _file_is_wal(tmp_path / "au.db")


# --------------------------------------------------------------------------------------
# Several processes on one file
# --------------------------------------------------------------------------------------

N_PER_PROCESS = 50


def _chain(thread_id: str, n: int) -> Iterator[tuple[Any, ...]]:
    """The arguments of each `put` of a chain of `n` checkpoints, with its writes."""
    parent = None
    for i in range(n):
        cp = empty_checkpoint()
        cp["channel_values"] = {"i": i, "who": thread_id}
        cp["channel_versions"] = {"i": i + 1, "who": 1}
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        if parent is not None:
            config["configurable"]["checkpoint_id"] = parent
        writes = [("i", i + 1), ("log", f"{thread_id}:{i}")]
        yield (config, cp, {"source": "loop", "step": i}, {"i": i + 1}), writes, f"task-{i}"
        parent = cp["id"]


def _put_chain(saver: Any, thread_id: str, n: int) -> None:
    for put_args, writes, task_id in _chain(thread_id, n):
        saver.put_writes(saver.put(*put_args), writes, task_id)


async def _aput_chain(saver: Any, thread_id: str, n: int) -> None:
    for put_args, writes, task_id in _chain(thread_id, n):
        await saver.aput_writes(await saver.aput(*put_args), writes, task_id)


def _writer_process(path: str, thread_id: str, use_async: bool, barrier: Any, errors: str) -> None:
    """Child process: open its own saver, wait for the others, write a chain of checkpoints."""
    try:
        if use_async:

            async def main() -> None:
                async with AsyncSqliteSaver.from_conn_string(path) as saver:
                    barrier.wait()
                    await _aput_chain(saver, thread_id, N_PER_PROCESS)

            asyncio.run(main())
        else:
            with SqliteSaver.from_conn_string(path) as saver:
                barrier.wait()
                _put_chain(saver, thread_id, N_PER_PROCESS)
    except BaseException:
        Path(errors).write_text(traceback.format_exc())
        barrier.abort()
        raise


def _run_processes(targets: list[tuple[Any, tuple]]) -> None:
    processes = [SPAWN.Process(target=fn, args=args) for fn, args in targets]
    for p in processes:
        p.start()
    for p in processes:
        p.join(PROCESS_TIMEOUT)
    alive = [p for p in processes if p.is_alive()]
    for p in alive:
        p.kill()
        p.join()
    assert not alive, "processes did not finish in time"


def test_processes_writing_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
    barrier = SPAWN.Barrier(5, timeout=PROCESS_TIMEOUT)
    threads = [f"proc-{i}" for i in range(5)]
    errors = [tmp_path / f"{t}.err" for t in threads]
    _run_processes(
        [
            (_writer_process, (path, t, i == 4, barrier, str(err)))  # the last one is async
            for i, (t, err) in enumerate(zip(threads, errors, strict=True))
        ]
    )
    failures = {e.name: e.read_text() for e in errors if e.exists()}
    assert not failures, "\n".join(f"--- {name}\n{text}" for name, text in failures.items())

    with SqliteSaver.from_conn_string(path) as saver:
        everything = list(saver.list(None))
        assert len(everything) == 5 * N_PER_PROCESS
        for thread_id in threads:
            chain = list(saver.list({"configurable": {"thread_id": thread_id}}))
            assert [t.metadata["step"] for t in chain] == list(range(N_PER_PROCESS))[::-1]
            for newer, older in itertools.pairwise(chain):
                assert newer.parent_config == older.config
            for t in chain:
                i = t.metadata["step"]
                assert t.checkpoint["channel_values"] == {"i": i, "who": thread_id}
                assert t.pending_writes == [
                    (f"task-{i}", "i", i + 1),
                    (f"task-{i}", "log", f"{thread_id}:{i}"),
                ]
        assert saver.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


ROUNDS = 40


def _setup_process(
    paths: list[str], use_async: bool, open_first: bool, barrier: Any, errors: str
) -> None:
    """Child process: for each new file, meet the other process, then set the schema up
    (and write two checkpoints). Stops at the first failure and breaks the barrier so the
    other process does not wait for it."""
    try:
        for path in paths:
            thread_id = f"{'a' if use_async else 's'}-{Path(path).stem}"
            if use_async:

                async def main(path: str = path, thread_id: str = thread_id) -> None:
                    if not open_first:
                        barrier.wait()
                    async with AsyncSqliteSaver.from_conn_string(path) as saver:
                        if open_first:
                            barrier.wait()
                        await saver.asetup()
                        await _aput_chain(saver, thread_id, 2)

                asyncio.run(main())
            else:
                if not open_first:
                    barrier.wait()
                with SqliteSaver.from_conn_string(path) as saver:
                    if open_first:
                        barrier.wait()
                    saver.setup()
                    _put_chain(saver, thread_id, 2)
    except BaseException:
        Path(errors).write_text(traceback.format_exc())
        barrier.abort()
        raise


@pytest.mark.parametrize("kinds", [("sync", "async"), ("sync", "sync")], ids="+".join)
@pytest.mark.parametrize("open_first", [True, False], ids=["open-then-setup", "open-and-setup"])
def test_two_processes_set_up_a_new_file_at_once(
    tmp_path: Path, open_first: bool, kinds: tuple[str, str]
) -> None:
    """Both processes meet at a barrier, then both set the schema up on the same new file
    (with "open-and-setup" they also open it, switching it to WAL, at the same moment).
    Repeated on several new files, as a race only shows some of the time."""
    paths = [str(tmp_path / f"new{i}.db") for i in range(ROUNDS)]
    barrier = SPAWN.Barrier(2, timeout=PROCESS_TIMEOUT)
    errors = [tmp_path / f"{i}-{kind}.err" for i, kind in enumerate(kinds)]
    _run_processes(
        [
            (_setup_process, (paths, kind == "async", open_first, barrier, str(err)))
            for kind, err in zip(kinds, errors, strict=True)
        ]
    )
    failures = {e.name: e.read_text() for e in errors if e.exists()}
    assert not failures, "\n".join(f"--- {name}\n{text}" for name, text in failures.items())
    for path in paths:
        with sqlite3.connect(path) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY 1")
            assert versions.fetchall() == ALL_VERSIONS
            assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (4,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


class _RecordedSleeps:
    """Stands in for the savers' `time` module: records each sleep while waiting for the
    write lock, and signals the first."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.waiting = threading.Event()
        self.monotonic = time.monotonic

    def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.waiting.set()
        time.sleep(delay)


def test_a_writer_polls_for_the_write_lock_another_connection_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting for another process's write lock polls every few ms (not SQLite's busy
    handler, which sleeps up to 100 ms a time): the put goes through soon after the
    lock is released, and the connection keeps its busy timeout."""
    path = tmp_path / "poll.db"
    clock = _RecordedSleeps()
    monkeypatch.setattr(sqlite_savers, "time", clock)
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        done: list[Any] = []
        writer = threading.Thread(target=lambda: done.append(_round_trip(saver)))
        writer.start()
        assert clock.waiting.wait(30), "the put did not poll for the write lock"
        assert writer.is_alive() and not done
        other.execute("COMMIT")
        writer.join(30)
        other.close()
        assert done == [None]
        assert 0 < max(clock.delays) <= sqlite_savers.WRITE_POLL_MAX
        assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] == (
            sqlite_savers.BUSY_TIMEOUT_MS
        )


def test_a_writer_gives_up_on_a_lock_held_past_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        monkeypatch.setattr(sqlite_savers, "BUSY_TIMEOUT_MS", 50)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _round_trip(saver)
        other.execute("ROLLBACK")
        other.close()
        assert not saver.conn.in_transaction
        assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50
        _round_trip(saver)  # the lock is free again: the saver works


# --------------------------------------------------------------------------------------
# from_url
# --------------------------------------------------------------------------------------


def _round_trip(saver: Any) -> None:
    cp = empty_checkpoint()
    cp["channel_values"] = {"x": 1}
    stored = saver.put({"configurable": {"thread_id": "u", "checkpoint_ns": ""}}, cp, {}, {"x": 1})
    assert saver.get_tuple(stored).checkpoint == cp


async def _around_trip(saver: Any) -> None:
    cp = empty_checkpoint()
    cp["channel_values"] = {"x": 1}
    config = {"configurable": {"thread_id": "u", "checkpoint_ns": ""}}
    stored = await saver.aput(config, cp, {}, {"x": 1})
    assert (await saver.aget_tuple(stored)).checkpoint == cp


async def test_from_url_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with from_url("sqlite:///relative.db") as saver:
        assert type(saver) is SqliteSaver
        _round_trip(saver)
    assert (tmp_path / "relative.db").is_file()
    async with from_url("sqlite:///relative.db") as asaver:
        assert type(asaver) is AsyncSqliteSaver
        assert (await asaver.aget_tuple({"configurable": {"thread_id": "u"}})) is not None
    (tmp_path / "sub").mkdir()
    with from_url("sqlite:///sub/nested.db") as saver:
        _round_trip(saver)
    assert (tmp_path / "sub" / "nested.db").is_file()


async def test_from_url_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "abs.db"
    url = f"sqlite:///{target}"
    assert url.startswith("sqlite:////")
    with from_url(url) as saver:
        assert type(saver) is SqliteSaver
        _round_trip(saver)
    assert target.is_file()
    async with from_url(url) as asaver:
        assert type(asaver) is AsyncSqliteSaver
        await _around_trip(asaver)
    spaced = tmp_path / "with space é.db"
    with from_url("sqlite:///" + str(spaced).replace(" ", "%20")) as saver:
        _round_trip(saver)
    assert spaced.is_file()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
async def test_from_url_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    with from_url(url) as saver:
        assert type(saver) is SqliteSaver
        _round_trip(saver)
    async with from_url(url) as asaver:
        assert type(asaver) is AsyncSqliteSaver
        await _around_trip(asaver)
        # a new in-memory database each time: nothing of the sync one is there
        assert await asaver.aget_tuple({"configurable": {"thread_id": "nobody"}}) is None
    assert list(tmp_path.iterdir()) == []  # no file called ":memory:"


async def test_from_url_passes_options(tmp_path: Path) -> None:
    with from_url(f"sqlite:///{tmp_path}/opt.db", auto_setup=False) as saver:
        assert saver.auto_setup is False
    async with from_url(f"sqlite:///{tmp_path}/opt.db", auto_setup=False) as asaver:
        assert asaver.auto_setup is False


PASSWORD = "s3cr3t-PW"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"mysql://u:{PASSWORD}@h/db", "mysql"),
        (f"MySQL+pymysql://u:{PASSWORD}@h:3306/db", "mysql+pymysql"),
        (f"redis://:{PASSWORD}@h/0", "redis"),
        (f"sqlite://u:{PASSWORD}@host/x.db", "host"),
        ("no-scheme.db", "scheme"),
        (f"sqlite://u:{PASSWORD}@[::1/x.db", "URL"),
    ],
)
async def test_from_url_errors_never_show_the_password(url: str, needle: str) -> None:
    for use_async in (False, True):
        with pytest.raises(ConfigError) as info:
            if use_async:
                async with from_url(url):
                    pass
            else:
                with from_url(url):
                    pass
        text = f"{info.value} {info.value!r}"
        assert needle.lower() in text.lower(), text
        assert PASSWORD not in text
        cause = info.value.__cause__ or info.value.__context__
        assert cause is None or PASSWORD not in f"{cause} {cause!r}"


async def test_async_saver_hops_to_the_driver_thread_once_per_operation(tmp_path: Path) -> None:
    """A put (several statements: values, checkpoint, thread row) and a get each cost one
    trip to aiosqlite's thread, not one per statement."""
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "hops.db")) as saver:
        await saver.setup()
        hops: list[str] = []
        queue = saver.conn._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(fn, "__name__", repr(fn)))
            return await queue(fn, *args, **kwargs)

        saver.conn._execute = counted  # type: ignore[method-assign]
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": ["a long message " * 20] * 3}
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        stored = await saver.aput(config, checkpoint, {"step": 1}, {})
        assert len(hops) == 1
        got = await saver.aget_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == checkpoint["channel_values"]
        assert len(hops) == 2


@pytest.mark.parametrize("url", ["sqlite:////tmp/abs.db", "sqlite:///rel.db?mode=ro", "sqlite://"])
def test_redact_leaves_a_url_without_a_password_as_written(url: str) -> None:
    assert redact(url) == url


async def test_from_url_without_a_url_reads_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with from_url() as saver:  # a local SQLite file
        saver.put(
            {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, empty_checkpoint(), {}, {}
        )
    assert (tmp_path / "checkpoints.db").exists()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    async with from_url() as saver:
        assert await saver.aget_tuple({"configurable": {"thread_id": "t"}}) is None
    assert (tmp_path / "env.db").exists()
    monkeypatch.setenv("DATABASE_URL", "mysql://u:s3cret@h/db")
    with pytest.raises(ConfigError, match="mysql") as info:
        from_url()
    assert "s3cret" not in str(info.value)
