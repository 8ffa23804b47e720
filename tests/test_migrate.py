"""`migrate` between real SQLite files and the real PostgreSQL test database: a source
written by real LangGraph graphs is copied, read back equal through both savers, resumed
on the target, copied again (nothing), stopped with SIGKILL and completed, and checked."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict

import psycopg
import pytest
import scenarios as sc
from helpers import pg_schema_url
from helpers import run_cfg as config
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from langgraph_store_dual import ConfigError, ConnectError, SchemaVersionError, from_url
from langgraph_store_dual.transfer.migrate import migrate
from langgraph_store_dual.transfer.report import Progress

KINDS = ("values", "writes", "checkpoints", "threads")


class _BoomState(TypedDict, total=False):
    log: list[str]


def build_failing_graph(checkpointer: Any, rec: sc.Recorder) -> Any:
    """A graph whose only node fails: its thread is left in the error run state."""

    def boom(state: _BoomState) -> dict:
        rec.called("boom")
        raise RuntimeError("boom")

    builder = StateGraph(_BoomState)
    builder.add_node(boom)
    builder.add_edge(START, "boom")
    builder.add_edge("boom", END)
    return builder.compile(checkpointer=checkpointer)


#: Each source thread and the graph that wrote it (to read and resume it on the target).
GRAPHS: dict[str, Callable[[Any, sc.Recorder], Any]] = {
    "ask": sc.build_interrupt_graph,  # an interrupt left pending
    "review": sc.build_subgraph_graph,  # interrupted inside a subgraph
    "stateful": sc.build_stateful_subgraph_graph,  # a subgraph with checkpoints of its own
    "fan": sc.build_fanout_graph,  # Send fan-out
    "chat": sc.build_chat_graph,  # messages, interned values
    "fail": build_failing_graph,  # a node error
}


def write_source(saver: Any) -> None:
    """Real graph runs, several threads and users, a renamed and an archived thread."""
    rec = sc.Recorder("sync")

    def graph(name: str) -> Any:
        return GRAPHS[name](saver, rec)

    graph("ask").invoke({"log": ["start"]}, config("ask", user_id="alice"))
    graph("review").invoke({"topic": "otters", "log": []}, config("review", user_id="bob"))
    for turn in range(2):
        graph("stateful").invoke({"value": turn, "log": []}, config("stateful", user_id="alice"))
    fan = graph("fan")
    fan.invoke({"items": [3, 1, 2]}, config("fan", user_id="carol"))
    fan.invoke({"items": [5, 4]}, config("fan", user_id="carol"))
    chat = graph("chat")
    for message_id, text in sc.CHAT_TURNS_A:
        chat.invoke(
            {"messages": [sc.HumanMessage(text, id=message_id)]}, config("chat", user_id="dave")
        )
    with pytest.raises(RuntimeError, match="boom"):
        graph("fail").invoke({"log": []}, config("fail", user_id="erin"))
    saver.threads.update(
        "chat", title="Sums", metadata={"topic": "maths", "n": 3}, ttl=timedelta(days=7)
    )
    saver.threads.archive("fan")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrate") / "template.db"
    with from_url(f"sqlite:///{path}") as saver:
        write_source(saver)
    return path


@pytest.fixture
def source(template: Path, tmp_path: Path) -> str:
    """A fresh copy of the graph-written SQLite database, as a URL."""
    path = tmp_path / "source.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def everything(url: str) -> list[Any]:
    """Every checkpoint of every thread and namespace, as the saver reads it."""
    with from_url(url) as saver:
        return sorted(
            saver.list(None),
            key=lambda t: tuple(t.config["configurable"].values()),
        )


def _ms(t: Any) -> Any:
    def cut(value: datetime) -> datetime:
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    expires = None if t.expires_at is None else cut(t.expires_at)
    return dataclasses.replace(
        t, created_at=cut(t.created_at), updated_at=cut(t.updated_at), expires_at=expires
    )


def thread_rows(url: str) -> dict[str, Any]:
    with from_url(url) as saver:
        return {tid: _ms(saver.threads.get(tid)) for tid in GRAPHS}


def histories(url: str) -> dict[str, Any]:
    """`get_state_history` of every thread, and the state with its subgraphs."""
    out = {}
    with from_url(url) as saver:
        for tid, build in GRAPHS.items():
            graph = build(saver, sc.Recorder("sync"))
            out[tid] = list(graph.get_state_history(config(tid)))
            out[f"{tid}.state"] = graph.get_state(config(tid), subgraphs=True)
    return out


def counts(url: str) -> dict[str, int]:
    tables = {"values": "checkpoint_values", "writes": "checkpoint_writes"}
    sql = "SELECT count(*) FROM {}"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {k: conn.execute(sql.format(tables.get(k, k))).fetchone()[0] for k in KINDS}
    with psycopg.connect(url) as conn:
        return {k: conn.execute(sql.format(tables.get(k, k))).fetchone()[0] for k in KINDS}


def assert_complete(report: Any, copied: dict[str, int] | None = None) -> None:
    assert report.ok, report.problems
    assert not report.problems
    assert report.samples_checked > 0
    if copied is not None:
        assert report.copied == copied


def test_sqlite_to_postgres_reads_back_the_same_and_resumes(source: str, pg_clean_url: str):
    want = counts(source)
    assert want["checkpoints"] > 40 and want["values"] > 0 and want["threads"] == len(GRAPHS)
    steps: list[Progress] = []
    report = migrate(source, pg_clean_url, batch_size=7, progress=steps.append)
    assert_complete(report, copied=want)
    assert report.skipped == dict.fromkeys(KINDS, 0)
    assert [(c.kind, c.source, c.target) for c in report.counts] == [
        (k, want[k], want[k]) for k in KINDS
    ]
    assert counts(pg_clean_url) == want
    # progress: batches of 7 in copy order, then the samples
    phases = [s.phase for s in steps]
    assert phases.index("values") < phases.index("writes") < phases.index("checkpoints")
    assert phases.index("checkpoints") < phases.index("threads") < phases.index("verify")
    checkpoint_steps = [s for s in steps if s.phase == "checkpoints"]
    assert [s.done for s in checkpoint_steps][:2] == [7, 14]
    assert checkpoint_steps[-1].done == checkpoint_steps[-1].total == want["checkpoints"]

    assert everything(pg_clean_url) == everything(source)
    assert histories(pg_clean_url) == histories(source)
    pg_threads = thread_rows(pg_clean_url)
    assert pg_threads == thread_rows(source)
    assert pg_threads["chat"].title == "Sums"
    assert pg_threads["chat"].metadata == {"topic": "maths", "n": 3}
    assert (pg_threads["chat"].ttl, pg_threads["chat"].ttl_strategy) == (
        timedelta(days=7),
        "delete",
    )
    assert pg_threads["chat"].expires_at == pg_threads["chat"].updated_at + timedelta(days=7)
    assert pg_threads["fan"].status == "archived"
    assert pg_threads["ask"].run_state == "interrupted"
    assert pg_threads["review"].run_state == "interrupted"
    assert pg_threads["fail"].run_state == "error"
    assert pg_threads["ask"].user_id == "alice"

    # the pending interrupts resume on PostgreSQL as they do on SQLite
    results = {}
    for url in (source, pg_clean_url):
        with from_url(url) as saver:
            rec = sc.Recorder("sync")
            ask = sc.build_interrupt_graph(saver, rec)
            review = sc.build_subgraph_graph(saver, rec)
            # new checkpoint and interrupt ids differ: the trace numbers them in order
            rec.record("ask", ask.invoke(Command(resume="Ada"), config("ask")))
            rec.record("ask.state", ask.get_state(config("ask")))
            rec.record("review", review.invoke(Command(resume="lgtm"), config("review")))
            rec.record("review.state", review.get_state(config("review"), subgraphs=True))
            assert saver.threads.get("ask").run_state == "interrupted"  # the next question
            results[url] = rec
    assert results[pg_clean_url].trace == results[source].trace
    assert results[pg_clean_url].raw["ask.state"].values["log"] == ["start", "name=Ada"]
    assert results[pg_clean_url].raw["review"]["draft"] == "A NOTE ON OTTERS"


def test_second_run_copies_nothing(source: str, pg_clean_url: str):
    first = migrate(source, pg_clean_url)
    assert_complete(first, copied=counts(source))
    again = migrate(source, pg_clean_url, batch_size=5)
    assert_complete(again, copied=dict.fromkeys(KINDS, 0))
    assert again.skipped == first.copied


def test_postgres_to_sqlite_and_same_engine(source: str, pg_clean_url: str, tmp_path: Path):
    assert_complete(migrate(source, pg_clean_url))
    back = f"sqlite:///{tmp_path / 'back.db'}"
    report = migrate(pg_clean_url, back, batch_size=11)
    assert_complete(report, copied=counts(source))
    assert everything(back) == everything(source)
    assert histories(back) == histories(source)
    assert thread_rows(back) == thread_rows(source)
    assert_complete(migrate(pg_clean_url, back), copied=dict.fromkeys(KINDS, 0))
    # PostgreSQL to PostgreSQL (another schema) and SQLite to SQLite
    other = pg_schema_url(pg_clean_url, "copy")
    assert_complete(migrate(pg_clean_url, other), copied=counts(source))
    assert everything(other) == everything(source)
    twin = f"sqlite:///{tmp_path / 'twin.db'}"
    assert_complete(migrate(source, twin), copied=counts(source))
    assert everything(twin) == everything(source)
    with sqlite3.connect(tmp_path / "twin.db") as a, sqlite3.connect(tmp_path / "source.db") as b:
        sql = "SELECT * FROM threads ORDER BY thread_id"  # rows as stored, times included
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall()


def test_dry_run_writes_nothing(source: str, pg_clean_url: str, tmp_path: Path):
    want = counts(source)
    missing = tmp_path / "never.db"
    report = migrate(source, f"sqlite:///{missing}", dry_run=True)
    assert report.dry_run and report.copied == want and report.counts == []
    assert not missing.exists()

    report = migrate(source, pg_clean_url, dry_run=True, batch_size=9)
    assert report.copied == want
    with psycopg.connect(pg_clean_url) as conn:
        assert conn.execute("SELECT to_regclass('checkpoints')").fetchone() == (None,)
    assert_complete(migrate(source, pg_clean_url, threads_only=True))
    report = migrate(source, pg_clean_url, dry_run=True)
    assert report.skipped == {**dict.fromkeys(KINDS, 0), "threads": want["threads"]}
    assert report.copied == {**want, "threads": 0}
    assert counts(pg_clean_url) == {**dict.fromkeys(KINDS, 0), "threads": want["threads"]}


def test_threads_only_copies_the_registry(source: str, pg_clean_url: str):
    report = migrate(source, pg_clean_url, threads_only=True)
    assert_complete(report, copied={"threads": len(GRAPHS)})
    assert [c.kind for c in report.counts] == ["threads"]
    assert counts(pg_clean_url) == {**dict.fromkeys(KINDS, 0), "threads": len(GRAPHS)}
    assert thread_rows(pg_clean_url) == thread_rows(source)


def test_since_copies_recently_updated_threads(source: str, pg_clean_url: str):
    path = source.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # three threads last active in 2020
        conn.execute(
            "UPDATE threads SET updated_at = '2020-01-01T00:00:00.000Z' "
            "WHERE thread_id IN ('ask', 'fan', 'chat')"
        )
    report = migrate(source, pg_clean_url, since=datetime(2021, 1, 1))
    assert_complete(report)
    assert report.copied["threads"] == 3
    with from_url(pg_clean_url) as saver:
        copied = {t.thread_id for t in saver.threads.list(limit=100).items}
        assert copied == {"review", "stateful", "fail"}
        assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == copied
        assert saver.check_references() == []
    # everything since one instant before the oldest
    report = migrate(source, pg_clean_url, since=datetime(2019, 12, 31, tzinfo=timezone.utc))
    assert_complete(report)
    assert report.copied["threads"] == 3 and report.skipped["threads"] == 3
    assert everything(pg_clean_url) == everything(source)


@pytest.mark.parametrize("direction", ["sqlite-to-postgres", "postgres-to-sqlite"])
def test_rows_written_during_a_migration_come_with_the_next(
    direction: str, source: str, pg_clean_url: str, tmp_path: Path
) -> None:
    """The source is copied as it was when the migration began; a second run copies what
    was written meanwhile: a new thread, and new turns of a thread already copied."""
    if direction == "postgres-to-sqlite":
        assert_complete(migrate(source, pg_clean_url))
        source, target = pg_clean_url, f"sqlite:///{tmp_path / 'target.db'}"
    else:
        target = pg_clean_url
    written = []

    def write_meanwhile(step: Progress) -> None:
        if step.phase == "writes" and not written:
            with from_url(source) as saver:
                rec = sc.Recorder("sync")
                fan = sc.build_fanout_graph(saver, rec)
                fan.invoke({"items": [7]}, config("fan"))
                fan.invoke({"items": [8, 9]}, config("late", user_id="zoe"))
            written.append(step)

    before = counts(source)
    first = migrate(source, target, batch_size=10, progress=write_meanwhile)
    assert written
    assert_complete(first, copied=before)
    assert counts(target) == before
    assert counts(source)["checkpoints"] > before["checkpoints"]
    with from_url(target) as saver:
        assert saver.threads.get("late") is None

    second = migrate(source, target)
    assert_complete(second)
    assert second.copied["checkpoints"] == counts(source)["checkpoints"] - before["checkpoints"]
    assert second.copied["threads"] == 2  # "late", and "fan" updated later
    assert everything(target) == everything(source)
    with from_url(target) as saver:
        assert saver.threads.get("late").user_id == "zoe"
        assert saver.threads.get("fan").updated_at > saver.threads.get("ask").updated_at


_CHILD = textwrap.dedent(
    """
    import sys
    from langgraph_store_dual.transfer.migrate import migrate

    def progress(step):
        print(step.phase, step.done, step.total, flush=True)
        if step.phase == "checkpoints" and step.done >= int(sys.argv[3]):
            sys.stdin.readline()  # wait here for the SIGKILL

    migrate(sys.argv[1], sys.argv[2], batch_size=20, progress=progress)
    """
)


@pytest.fixture
def big_source(source: str) -> str:
    """The graph-written source with 60 more runs of a linear graph (300 checkpoints)."""
    with from_url(source) as saver:
        graph = sc.build_linear_graph(saver, sc.Recorder("sync"))
        for n in range(60):
            graph.invoke({"value": n, "log": []}, config(f"linear-{n % 6}", user_id="fay"))
    return source


@pytest.mark.parametrize("direction", ["sqlite-to-postgres", "postgres-to-sqlite"])
def test_sigkill_then_run_again(
    direction: str, big_source: str, pg_clean_url: str, tmp_path: Path
) -> None:
    if direction == "postgres-to-sqlite":
        assert_complete(migrate(big_source, pg_clean_url))
        source, target = pg_clean_url, f"sqlite:///{tmp_path / 'target.db'}"
    else:
        source, target = big_source, pg_clean_url
    want = counts(source)
    kill_at = 100
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, source, target, str(kill_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            phase, done, _ = line.split()
            if phase == "checkpoints" and int(done) >= kill_at:
                break
        else:
            pytest.fail(f"the migration ended before {kill_at} checkpoints: {child.wait()}")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # what was committed is whole: every batch up to the kill, every value they need
    got = counts(target)
    assert got["values"] == want["values"] and got["writes"] == want["writes"]
    assert got["checkpoints"] == int(done) < want["checkpoints"]
    with from_url(target) as saver:
        assert not [p for p in saver.check_references() if "missing" in p]

    report = migrate(source, target, batch_size=50)
    assert_complete(report)
    assert report.copied["checkpoints"] == want["checkpoints"] - int(done)
    assert report.skipped["checkpoints"] == int(done)
    assert report.copied["values"] == 0
    assert everything(target) == everything(source)


def test_ctrl_c_then_run_again(source: str, pg_clean_url: str) -> None:
    def interrupt(step: Progress) -> None:
        if step.phase == "checkpoints" and step.done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(source, pg_clean_url, batch_size=10, progress=interrupt)
    assert counts(pg_clean_url)["checkpoints"] == 20
    report = migrate(source, pg_clean_url, batch_size=10)
    assert_complete(report)
    assert report.skipped["checkpoints"] == 20
    assert everything(pg_clean_url) == everything(source)


def test_a_tampered_target_fails_verification(source: str, pg_clean_url: str):
    def delete_a_value(step: Progress) -> None:
        if step.phase == "writes" and step.done == step.total:
            with psycopg.connect(pg_clean_url, autocommit=True) as conn:
                conn.execute(
                    "DELETE FROM checkpoint_values WHERE ctid = "
                    "(SELECT ctid FROM checkpoint_values WHERE thread_id = 'chat' LIMIT 1)"
                )

    report = migrate(source, pg_clean_url, verify_samples=1000, progress=delete_a_value)
    assert not report.ok
    assert any("referred to but missing" in p for p in report.problems), report.problems
    assert any("MissingValueError" in p for p in report.problems), report.problems

    # a second run puts the value back
    report = migrate(source, pg_clean_url)
    assert_complete(report, copied={**dict.fromkeys(KINDS, 0), "values": 1})


def test_changed_target_rows_are_reported_then_replaced(source: str, pg_clean_url: str):
    def change_metadata(step: Progress) -> None:
        if step.phase == "threads":
            with psycopg.connect(pg_clean_url, autocommit=True) as conn:
                conn.execute("""UPDATE checkpoints SET metadata = metadata || '{"x": 1}'""")

    report = migrate(source, pg_clean_url, verify_samples=5, progress=change_metadata)
    assert not report.ok
    assert len(report.problems) == 5
    assert all("metadata differs" in p for p in report.problems), report.problems
    report = migrate(source, pg_clean_url)
    assert_complete(report)
    assert report.copied["checkpoints"] == counts(source)["checkpoints"]
    assert everything(pg_clean_url) == everything(source)


@pytest.fixture
def pg_with_password(pg_clean_url: str) -> Iterator[str]:
    yield pg_clean_url.replace("postgres@", "postgres:s3cret-pw@").replace(":5432", ":1")


def test_clear_errors(source: str, tmp_path: Path, pg_with_password: str) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError, match=f"source database {missing} does not exist"):
        migrate(f"sqlite:///{missing}", f"sqlite:///{tmp_path / 't.db'}")
    assert not missing.exists() and not (tmp_path / "t.db").exists()
    with pytest.raises(ConfigError, match="same database"):
        migrate(source, source)
    with pytest.raises(ConfigError, match="batch_size"):
        migrate(source, f"sqlite:///{tmp_path / 't.db'}", batch_size=0)
    with pytest.raises(ConfigError, match="in-memory"):
        migrate(source, "sqlite:///:memory:")
    with pytest.raises(ConfigError, match=f"folder {tmp_path / 'no'} does not exist"):
        migrate(source, f"sqlite:///{tmp_path / 'no' / 't.db'}")

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(SchemaVersionError, match="no langgraph-store-dual schema"):
        migrate(f"sqlite:///{empty}", f"sqlite:///{tmp_path / 't.db'}")

    with pytest.raises(ConnectError) as caught:
        migrate(source, pg_with_password)
    assert "s3cret-pw" not in str(caught.value)

    with sqlite3.connect(source.removeprefix("sqlite:///")) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(SchemaVersionError, match="schema version 99, newer"):
        migrate(source, f"sqlite:///{tmp_path / 't.db'}")
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with from_url(fresh) as saver:
        saver.setup()
    with pytest.raises(SchemaVersionError, match="at version 99, newer"):
        migrate(fresh, source)  # the target refuses too


def test_source_written_before_the_last_schema_version_is_refused(source: str, tmp_path: Path):
    with sqlite3.connect(source.removeprefix("sqlite:///")) as conn:
        latest = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        conn.execute("DELETE FROM schema_version WHERE version = ?", (latest,))
    with pytest.raises(SchemaVersionError, match=f"this package needs {latest}"):
        migrate(source, f"sqlite:///{tmp_path / 't.db'}")


def test_since_must_be_a_datetime(source: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 't.db'}"
    with pytest.raises(ConfigError, match="since must be a datetime"):
        migrate(source, target, since="2024-01-01")  # type: ignore[arg-type]
    recent = migrate(source, target, since=datetime.now(timezone.utc) + timedelta(days=1))
    assert recent.ok and recent.copied == dict.fromkeys(KINDS, 0)
    assert os.path.exists(tmp_path / "t.db")
