"""Backups: SQLite's online backup API while a writer runs, restore, and the PostgreSQL
recipe (pg_dump of our objects, pg_restore into a fresh database) the README documents."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
from pg_server import _create_database, _drop_database, find_pg_ctl, with_dbname
from scenarios import Recorder, build_linear_graph
from transfer_data import GRAPHS, assert_same, fill, stored

from langgraph_store_dual import ConfigError, DecodeError, from_url
from langgraph_store_dual.sqlite import backup as sqlite_backup
from langgraph_store_dual.transfer import sql
from langgraph_store_dual.transfer.backup import backup, restore


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("live") / "live.db"
    asyncio.run(fill(f"sqlite:///{path}"))
    return path, stored(f"sqlite:///{path}")


class Writer(threading.Thread):
    """Runs a graph on new threads of a SQLite database, on its own connection, until
    stopped; `wait_for(n)` returns once it finished `n` runs."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.runs, self.error = url, 0, None
        self.stop, self.changed = threading.Event(), threading.Condition()

    def run(self) -> None:
        try:
            with from_url(self.url) as saver:
                graph = build_linear_graph(saver, Recorder("sync"))
                while not self.stop.is_set():
                    config = {"configurable": {"thread_id": f"run-{self.runs}"}}
                    graph.invoke({"value": self.runs, "log": []}, config)
                    with self.changed:
                        self.runs += 1
                        self.changed.notify_all()
        except BaseException as exc:  # reported by wait_for and the test
            self.error = exc
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, runs: int) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: self.runs >= runs or self.error, timeout=120)
        assert self.error is None, self.error
        return self.runs


def test_backup_while_a_writer_runs(filled, tmp_path: Path) -> None:
    source, want = filled
    backup(f"sqlite:///{source}", tmp_path / "live.db")  # the module's database stays as it is
    url = f"sqlite:///{tmp_path}/live.db"
    writer = Writer(url)
    writer.start()
    try:
        before = writer.wait_for(3)
        report = backup(url, tmp_path / "copy.db")
        writer.wait_for(writer.runs + 1)  # it ran on through the backup
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is None
    assert report.ok, report.problems
    copy = f"sqlite:///{tmp_path}/copy.db"
    with from_url(copy, auto_setup=False) as saver:
        assert saver.check_references() == []
        assert report.copied["checkpoints"] == sql.count(saver, "checkpoints")
        # each run the copy holds reads as one of its steps; those finished before it began
        # are whole (a, b and c added 1, 10 and 100)
        runs = [t for t in saver.threads.list(limit=1000).items if t.thread_id.startswith("run-")]
        graph = build_linear_graph(saver, Recorder("sync"))
        finished = 0
        for thread in runs:
            i = int(thread.thread_id[4:])
            value = graph.get_state({"configurable": {"thread_id": thread.thread_id}}).values
            assert value.get("value", i) in (i, i + 1, i + 11, i + 111)
            finished += value.get("value") == i + 111
        assert finished >= before
    got = stored(copy)
    for thread_id in GRAPHS:
        assert got["histories"][thread_id] == want["histories"][thread_id]
    assert not (tmp_path / "copy.db.partial").exists()


def test_restore(filled, tmp_path: Path) -> None:
    live, want = filled
    copy = tmp_path / "copy.db"
    backup(f"sqlite:///{live}", copy)
    target = f"sqlite:///{tmp_path}/restored.db"
    seen = []
    report = restore(copy, target, progress=seen.append)
    assert report.ok and report.copied["checkpoints"] == len(want["checkpoints"])
    assert seen and seen[-1].done == seen[-1].total
    assert_same(stored(target), want)
    with pytest.raises(ConfigError, match=r"restored.db holds 9 threads"):
        restore(copy, target)
    (tmp_path / "empty.db").touch()
    assert restore(copy, f"sqlite:///{tmp_path}/empty.db").ok


def test_backup_and_restore_errors(filled, tmp_path: Path) -> None:
    live, _ = filled
    url = f"sqlite:///{live}"
    existing = tmp_path / "there.db"
    existing.write_bytes(b"mine")
    with pytest.raises(ConfigError, match=r"there.db exists"):
        backup(url, existing)
    assert existing.read_bytes() == b"mine"
    with pytest.raises(ConfigError, match=r"nowhere.db does not exist"):
        backup(f"sqlite:///{tmp_path}/nowhere.db", tmp_path / "b.db")
    assert not (tmp_path / "nowhere.db").exists()
    with pytest.raises(ConfigError, match=r"backup file .*none.db does not exist"):
        restore(tmp_path / "none.db", f"sqlite:///{tmp_path}/t.db")
    with pytest.raises(DecodeError, match=r"not a SQLite database or is damaged"):
        restore(existing, f"sqlite:///{tmp_path}/t.db")
    assert not (tmp_path / "t.db").exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    copy = tmp_path / "copy.db"
    backup(url, copy)
    with pytest.raises(ConfigError, match=r"holds other tables \(notes\)"):
        restore(copy, f"sqlite:///{other}")


def test_a_backup_on_a_full_disk_leaves_no_file(
    filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy fails part way (SQLite: "database or disk is full"): the error is the
    driver's, and neither the backup nor its partial file stays to take up the disk."""
    live, _ = filled

    def full(source: sqlite3.Connection, copy: sqlite3.Connection, progress: object) -> None:
        copy.execute("CREATE TABLE started (x)")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite_backup, "_copy", full)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        backup(f"sqlite:///{live}", tmp_path / "b.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("call", ["backup", "restore"])
def test_postgres_points_at_pg_dump(call: str, tmp_path: Path) -> None:
    url = "postgresql://app:s3cret@db.example:5432/agents"
    with pytest.raises(ConfigError, match=r'pg_dump .*README, "Backups"') as info:
        backup(url, tmp_path / "x") if call == "backup" else restore(tmp_path / "x", url)
    assert "s3cret" not in str(info.value)


def _tool(name: str) -> str:
    return str(Path(find_pg_ctl()).with_name(name))


@pytest.mark.parametrize("scope", ["schema", "database"])
async def test_pg_dump_recipe(pg_server_url: str, tmp_path: Path, scope: str) -> None:
    """The README's recipe: pg_dump our objects (a schema of their own, or the whole
    database), pg_restore them into a fresh database, read every thread back equal."""
    names = [f"lgsd_backup_{secrets.token_hex(4)}" for _ in range(2)]
    source, target = (with_dbname(pg_server_url, name) for name in names)
    options = "?options=-csearch_path%3Dagents" if scope == "schema" else ""
    try:
        _create_database(pg_server_url, names[0])
        if scope == "schema":
            with psycopg.connect(source, autocommit=True) as conn:
                conn.execute("CREATE SCHEMA agents")
        await fill(source + options)
        want = stored(source + options)
        dump = tmp_path / "agents.dump"
        only = ["--schema=agents"] if scope == "schema" else []
        subprocess.run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", *only, source],
            check=True,
            capture_output=True,
            text=True,
        )
        _create_database(pg_server_url, names[1])
        subprocess.run(
            [_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)],
            check=True,
            capture_output=True,
            text=True,
        )
        assert_same(stored(target + options), want)
    finally:
        for name in names:
            _drop_database(pg_server_url, name)
