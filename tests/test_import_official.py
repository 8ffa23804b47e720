"""`import_official`: databases written by the official savers (SQLite and PostgreSQL,
built by running real graphs) imported into ours, read back and resumed as on the
official saver; idempotence, a kill half-way, refused values and layouts."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import pg_schema_url
from helpers import run_cfg as cfg
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command, Send
from official_data import Opaque, ask, build, linear, official
from pg_server import _create_database, _drop_database, with_dbname

from langgraph_store_dual import ConfigError, ConnectError, SchemaVersionError, from_url
from langgraph_store_dual.transfer.official import import_official

ROOT = Path(__file__).resolve().parent.parent
KEY = b"k" * 32


def run_threads(graph: Any) -> None:
    """t1 and its twin left at an interrupt; t2 resumed twice across two runs; t3 done."""
    for tid in ("t1", "t1-twin"):
        graph.invoke(ask("Plan a trip to Lisbon", "a", "b", "c"), cfg(tid, user_id="alice"))
    graph.invoke(ask("first", "x"), cfg("t2"))
    graph.invoke(Command(resume="yes"), cfg("t2"))
    graph.invoke(ask("second", "y", "z"), cfg("t2"))
    graph.invoke(Command(resume="again"), cfg("t2"))
    graph.invoke(ask("third"), cfg("t3", user_id="bob"))
    graph.invoke(Command(resume="fine"), cfg("t3"))


THREADS = ("t1", "t1-twin", "t2", "t3")


def observe(graph: Any) -> dict[str, Any]:
    """What users of each thread see: history, and the state with its subgraphs."""
    seen = {}
    for tid in THREADS:
        seen[tid] = (
            list(graph.get_state_history(cfg(tid))),
            graph.get_state(cfg(tid), subgraphs=True),
            list(graph.get_state_history(cfg(tid, checkpoint_ns="child"))),
        )
    return seen


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """State values without message ids (random per run)."""
    return {
        k: [(m.type, m.content) for m in v] if k == "messages" else v for k, v in values.items()
    }


# -- databases -------------------------------------------------------------------------


@pytest.fixture
def pg_other_db(pg_server_url: str) -> Iterator[str]:
    """A second database on the server (dropped after the test)."""
    name = f"lgsd_official_{os.getpid()}_{os.urandom(3).hex()}"
    _create_database(pg_server_url, name)
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        _drop_database(pg_server_url, name)


def urls(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite-src":
        return f"sqlite:///{tmp_path / 'official.db'}"
    if kind == "sqlite-dst":
        return f"sqlite:///{tmp_path / 'ours.db'}"
    if kind == "pgdb-src":
        return str(request.getfixturevalue("pg_other_db"))
    base = request.getfixturevalue("pg_clean_url")
    # source and target on one server: the official tables in a schema of their own
    return pg_schema_url(base, "official") if kind == "pg-src" else base


# pg: another schema of the target's database; pgdb: another database on its server
PAIRS = [("sqlite", "sqlite"), ("pg", "pg"), ("pgdb", "pg"), ("sqlite", "pg"), ("pg", "sqlite")]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_import_reads_and_resumes_like_the_official_saver(
    src: str, dst: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = urls(f"{src}-src", tmp_path, request)
    target = urls(f"{dst}-dst", tmp_path, request)
    with official(source) as saver:
        graph = build(saver)
        run_threads(graph)
        want = observe(graph)
    assert want["t1"][1].interrupts and want["t1"][1].tasks[0].state  # pending, in the subgraph
    assert want["t2"][2], "the stateful subgraph has its own namespace"

    progress: list[Any] = []
    report = import_official(source, target, batch_size=3, progress=progress.append)
    assert report.ok, report.problems
    assert report.copied["threads"] == len(THREADS)
    assert report.copied["checkpoints"] == sum(len(want[t][0]) + len(want[t][2]) for t in THREADS)
    assert report.copied["writes"] > 0 and report.samples_checked > 0
    assert progress[-1].phase == "verify" and any(p.phase == "checkpoints" for p in progress)

    with from_url(target) as ours:
        graph = build(ours)
        assert observe(graph) == want
        t1 = ours.threads.get("t1")
        assert (t1.user_id, t1.title, t1.run_state) == (
            "alice",
            "Plan a trip to Lisbon",
            "interrupted",
        )
        assert ours.threads.get("t3").user_id == "bob"
        assert ours.check_references() == []

        again = import_official(source, target)
        assert again.ok, again.problems
        assert sum(again.copied.values()) == 0
        assert again.skipped["checkpoints"] == report.copied["checkpoints"]

        resumed_ours = graph.invoke(Command(resume="ok"), cfg("t1"))
        final_ours = graph.get_state(cfg("t1")).values
    with official(source) as saver:
        graph = build(saver)
        resumed_official = graph.invoke(Command(resume="ok"), cfg("t1-twin"))
        final_official = graph.get_state(cfg("t1-twin")).values
    assert plain(resumed_ours) == plain(resumed_official)
    assert plain(final_ours) == plain(final_official)
    assert final_ours["notes"] == ["review: ok"]


# -- a kill half-way ---------------------------------------------------------------------

DRIVER = """
import sys
sys.modules["langgraph.checkpoint.sqlite"] = None  # the import needs no official package
sys.modules["langgraph.checkpoint.postgres"] = None
from langgraph_store_dual.transfer.official import import_official

def tell(p):
    print(p.phase, p.done, p.total, flush=True)
    if p.phase == "checkpoints" and p.done >= int(sys.argv[3]):
        sys.stdin.readline()  # wait here to be killed

import_official(sys.argv[1], sys.argv[2], batch_size=4, progress=tell)
print("finished", flush=True)
"""


@pytest.mark.parametrize("dst", ["sqlite", "pg"])
def test_a_killed_import_completes_when_run_again(
    dst: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = urls("sqlite-src", tmp_path, request)
    target = urls(f"{dst}-dst", tmp_path, request)
    with official(source) as saver:
        graph = linear(saver)
        for t in range(6):
            for turn in range(4):
                graph.invoke(ask(f"turn {turn}", "a"), cfg(f"k{t}"))
        want = {f"k{t}": list(graph.get_state_history(cfg(f"k{t}"))) for t in range(6)}
    total = sum(len(h) for h in want.values())

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), source, target, str(total // 2)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            phase, done, _ = line.split()
            if phase == "checkpoints" and int(done) >= total // 2:
                break
        else:
            pytest.fail(f"the import ended before half-way: {proc.wait()}")
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()

    report = import_official(source, target, batch_size=4)
    assert report.ok, report.problems
    assert 0 < report.copied["checkpoints"] < total
    assert report.copied["checkpoints"] + report.skipped["checkpoints"] == total
    with from_url(target) as ours:
        graph = linear(ours)
        assert {t: list(graph.get_state_history(cfg(t))) for t in want} == want
    assert sum(import_official(source, target).copied.values()) == 0


def test_writes_stored_before_their_checkpoint_are_not_doubled(tmp_path: Path) -> None:
    """A kill between a checkpoint's writes and the checkpoint: the rerun stores both once."""
    source, target = tmp_path / "o.db", f"sqlite:///{tmp_path / 'ours.db'}"
    with official(f"sqlite:///{source}") as saver:
        graph = build(saver)
        graph.invoke(ask("hello", "a", "b"), cfg("w"))
        history = list(graph.get_state_history(cfg("w")))
        serde = saver.serde
    with sqlite3.connect(source) as conn:  # the checkpoint whose writes are of most tasks
        ((cid,),) = conn.execute(
            """SELECT checkpoint_id FROM writes WHERE thread_id = 'w' AND checkpoint_ns = ''
            GROUP BY checkpoint_id ORDER BY count(DISTINCT task_id) DESC LIMIT 1"""
        ).fetchall()
        rows = conn.execute(
            """SELECT task_id, task_path, channel, type, value FROM writes
            WHERE thread_id = 'w' AND checkpoint_ns = '' AND checkpoint_id = ?
            ORDER BY task_id, idx""",
            (cid,),
        ).fetchall()
        ((checkpoints,),) = conn.execute("SELECT count(*) FROM checkpoints").fetchall()
    at = cfg("w", checkpoint_ns="", checkpoint_id=cid)
    tasks: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for task_id, path, channel, type_, value in rows:
        tasks.setdefault((task_id, path), []).append((channel, serde.loads_typed((type_, value))))
    assert len(tasks) > 1
    with from_url(target) as ours:  # its writes, as a killed run left them
        for (task_id, path), writes in tasks.items():
            ours.put_writes(at, writes, task_id, path)
    report = import_official(f"sqlite:///{source}", target)
    assert report.ok, report.problems
    assert report.copied["checkpoints"] == checkpoints
    with from_url(target) as ours:
        assert list(build(ours).get_state_history(cfg("w"))) == history
        assert ours.threads.stats("w").writes == report.copied["writes"]


# -- what is refused ------------------------------------------------------------------------


def put_pickle(source: str) -> None:
    with official(source, serde=JsonPlusSerializer(pickle_fallback=True)) as saver:
        checkpoint = {
            "v": 4,
            "id": "1f000000-0000-6000-8000-000000000001",
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"obj": Opaque(7), "n": 1},
            "channel_versions": {"obj": 1, "n": 1},
            "versions_seen": {},
            "updated_channels": None,
        }
        versions = checkpoint["channel_versions"]
        saver.put(cfg("p", checkpoint_ns=""), checkpoint, {"source": "input", "step": -1}, versions)


@pytest.fixture(params=["sqlite", "pg"])
def to_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """An empty official database of either engine, and our SQLite database."""
    return urls(f"{request.param}-src", tmp_path, request), f"sqlite:///{tmp_path / 'ours.db'}"


def test_pickles_are_refused_unless_a_pickle_key_opts_in(to_sqlite: tuple[str, str]) -> None:
    source, target = to_sqlite
    put_pickle(source)
    report = import_official(source, target)
    assert not report.ok
    problem = report.problems[0]  # then the verification's: the thread is not there
    assert "1f000000-0000-6000-8000-000000000001 of thread 'p'" in problem
    assert "pickled value is refused" in problem and "pickle_key" in problem
    assert report.copied["checkpoints"] == 0
    assert [(c.kind, c.ok) for c in report.counts if not c.ok] == [
        ("threads", False),
        ("checkpoints", False),
    ]

    with pytest.raises(ConfigError, match="pickle_key must be bytes, at least 16"):
        import_official(source, target, pickle_key=b"short")
    report = import_official(source, target, pickle_key=KEY)
    assert report.ok, report.problems
    assert report.copied["checkpoints"] == 1
    serde = JsonPlusSerializer(pickle_fallback=True)
    with from_url(target, serde=serde, pickle_key=KEY) as ours:
        assert ours.get_tuple(cfg("p")).checkpoint["channel_values"]["obj"] == Opaque(7)


def test_a_newer_official_postgres_schema_is_refused(pg_clean_url: str, tmp_path: Path) -> None:
    source = pg_schema_url(pg_clean_url, "official")
    with official(source):
        pass
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("INSERT INTO checkpoint_migrations (v) VALUES (10)")
    with pytest.raises(SchemaVersionError, match="official schema version 10, newer than"):
        import_official(source, f"sqlite:///{tmp_path / 'ours.db'}")


def test_a_source_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(ConnectError, match=r"cannot connect to the source .*:\*\*\*@") as raised:
        import_official(url, f"sqlite:///{tmp_path / 'ours.db'}")
    assert "s3cret" not in str(raised.value)


def test_sources_that_are_not_official_databases(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'ours.db'}"
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ConfigError, match=r"nowhere\.db' does not exist"):
        import_official(f"sqlite:///{missing}", target)
    assert not missing.exists()

    with from_url(target) as ours:
        ours.setup()
    with pytest.raises(ConfigError, match="copy it with migrate"):
        import_official(target, f"sqlite:///{tmp_path / 'other.db'}")

    newer = tmp_path / "newer.db"
    with official(f"sqlite:///{newer}") as saver:
        saver.setup()
    with sqlite3.connect(newer) as conn:
        conn.execute("ALTER TABLE checkpoints ADD COLUMN created_at TEXT")
    with pytest.raises(SchemaVersionError, match="columns created_at"):
        import_official(f"sqlite:///{newer}", target)


def test_dry_run_counts_and_writes_nothing(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "ours.db"
    with official(source) as saver:
        build(saver).invoke(ask("hi", "a"), cfg("d"))
        n = len(list(saver.list(cfg("d"))))
    report = import_official(source, f"sqlite:///{target}", dry_run=True)
    assert report.dry_run and report.ok
    assert report.copied["checkpoints"] == n
    assert not target.exists()


def test_verification_finds_a_checkpoint_that_reads_back_different(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'o.db'}", f"sqlite:///{tmp_path / 'ours.db'}"
    with official(source) as saver:
        build(saver).invoke(ask("hi", "a", "b"), cfg("v"))
    assert import_official(source, target).ok
    with from_url(target) as ours:  # the latest checkpoint changed in place
        latest = ours.get_tuple(cfg("v"))
        latest.checkpoint["channel_values"]["done"] = ["tampered"]
        ours.put(latest.parent_config, latest.checkpoint, latest.metadata, {})
    report = import_official(source, target, verify_samples=1000)
    assert (
        report.copied["checkpoints"] == 0
        and report.samples_checked == report.skipped["checkpoints"]
    )
    assert report.problems == [
        f"checkpoint {latest.config['configurable']['checkpoint_id']} of thread 'v' reads back "
        "with a different value of channel 'done' than the source's"
    ]


def test_sends_of_checkpoints_before_format_4_read_as_on_the_official_saver(
    to_sqlite: tuple[str, str],
) -> None:
    """Before format 4 a checkpoint's pending `Send`s were writes on its parent."""
    source, target = to_sqlite
    first, second = "1f000000-0000-6000-8000-000000000001", "1f000000-0000-6000-8000-000000000002"
    sends = [Send("work", {"item": "a"}), Send("work", {"item": "b"})]
    with official(source) as saver:
        version = "00000000000000000000000000000001.0"
        for cid, parent in ((first, None), (second, first)):
            checkpoint: dict[str, Any] = {
                "v": 1,
                "id": cid,
                "ts": "2024-01-01T00:00:00+00:00",
                "channel_values": {"n": 1},
                "channel_versions": {"n": version},
                "versions_seen": {},
            }
            where = cfg("old", checkpoint_ns="", **({"checkpoint_id": parent} if parent else {}))
            saver.put(where, checkpoint, {"step": 0}, {"n": version})
        tasks = [("__pregel_tasks", s) for s in sends]
        saver.put_writes(cfg("old", checkpoint_ns="", checkpoint_id=first), tasks, "task")
        want = saver.get_tuple(cfg("old"))
    report = import_official(source, target, verify_samples=10)
    assert report.ok, report.problems
    with from_url(target) as ours:
        got = ours.get_tuple(cfg("old"))
    assert got.checkpoint["channel_values"]["__pregel_tasks"] == sends
    if source.startswith(
        "postgresql"
    ):  # the official PostgreSQL saver moves them too; the SQLite one does not
        assert got.checkpoint["channel_values"] == want.checkpoint["channel_values"]


def test_an_unknown_url_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown database URL scheme .mysql. in mysql:"):
        import_official("mysql://db/x", f"sqlite:///{tmp_path / 'ours.db'}")


def test_a_thread_our_savers_cannot_store_is_a_problem_and_the_others_are_copied(
    tmp_path: Path,
) -> None:
    source, target = f"sqlite:///{tmp_path / 'o.db'}", f"sqlite:///{tmp_path / 'ours.db'}"
    long_id = "t" * 600
    with official(source) as saver:
        graph = linear(saver)
        for tid in (long_id, "fine"):
            graph.invoke(ask("hi"), cfg(tid))
    report = import_official(source, target)
    assert not report.ok
    assert report.copied["threads"] == 1
    assert report.problems[0].startswith(f"thread {long_id!r}: thread_id is 600 bytes long")
    with from_url(target) as ours:
        assert ours.threads.get("fine") is not None
