"""The transfer commands end to end through `python -m langgraph_store_dual`, on both
engines: migrate both ways, export and import, backup and restore, import-official."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import chat_graph, human, run_cfg
from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSqliteSaver
from langgraph.types import Command

from langgraph_store_dual import from_url

ROOT = Path(__file__).resolve().parents[1]


def command(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "langgraph_store_dual", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def report(*args: str, url: str | None = None) -> dict[str, Any]:
    done = command(*args, "--json", url=url)
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert found["ok"] is True and found["problems"] == []
    return found


def fill(checkpointer: Any) -> None:
    """Two chats and a run waiting at an interrupt."""
    graph = chat_graph(checkpointer)
    graph.invoke(human("hello", 1), run_cfg("chat", user_id="ana"))
    graph.invoke(human("again", 2), run_cfg("chat", user_id="ana"))
    graph.invoke(human("hi", 1), run_cfg("other", user_id="bob"))
    graph.invoke(human("ask", 1), run_cfg("waiting", user_id="bob"))


def histories(url: str) -> dict[str, list[Any]]:
    with from_url(url) as saver:
        graph = chat_graph(saver)
        return {
            tid: [(s.values, s.next, s.config) for s in graph.get_state_history(run_cfg(tid))]
            for tid in ("chat", "other", "waiting")
        }


def test_migrate_export_import_backup_restore(tmp_path: Path, pg_clean_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'app.db'}"
    with from_url(source) as saver:
        fill(saver)
    want = histories(source)

    first = report("migrate", source, pg_clean_url)
    assert first["copied"]["checkpoints"] > 0 and first["copied"]["threads"] == 3
    again = report("migrate", source, pg_clean_url)
    assert set(again["copied"].values()) == {0}
    assert histories(pg_clean_url) == want
    back = f"sqlite:///{tmp_path / 'back.db'}"
    report("migrate", pg_clean_url, back)
    assert histories(back) == want

    lines = tmp_path / "threads.jsonl"
    done = command("export", "--all", "-o", str(lines), url=pg_clean_url)
    assert done.returncode == 0, done.stderr
    imported = f"sqlite:///{tmp_path / 'imported.db'}"
    loaded = report("import", str(lines), url=imported)
    assert loaded["copied"]["checkpoints"] == first["copied"]["checkpoints"]
    assert [(s[0], s[1]) for s in histories(imported)["chat"]] == [
        (s[0], s[1]) for s in want["chat"]
    ]

    copy = tmp_path / "app-backup.db"
    report("backup", str(copy), url=source)
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    report("restore", str(copy), url=restored)
    assert histories(restored) == want

    # expected errors: a clear message, an exit code, no traceback, nothing created
    refused = command("backup", str(tmp_path / "pg.db"), url=pg_clean_url)
    assert refused.returncode == 2 and "pg_dump" in refused.stderr
    missing = tmp_path / "nope.db"
    wrong = command("migrate", f"sqlite:///{missing}", pg_clean_url)
    assert wrong.returncode == 2 and "nope.db" in wrong.stderr and not missing.exists()
    for done in (refused, wrong):
        assert "Traceback" not in done.stderr


def test_import_official_and_resume(tmp_path: Path, pg_clean_url: str) -> None:
    path = tmp_path / "official.db"
    with OfficialSqliteSaver.from_conn_string(str(path)) as official:
        fill(official)
        graph = chat_graph(official)
        want = {
            tid: [s.values for s in graph.get_state_history(run_cfg(tid))]
            for tid in ("chat", "other", "waiting")
        }
    source = f"sqlite:///{path}"

    imported = report("import-official", source, pg_clean_url)
    assert imported["copied"]["threads"] == 3
    assert set(report("import-official", source, pg_clean_url)["copied"].values()) == {0}
    with from_url(pg_clean_url) as saver:
        graph = chat_graph(saver)
        got = {tid: [s.values for s in graph.get_state_history(run_cfg(tid))] for tid in want}
        assert got == want
        waiting = saver.threads.list(run_state="interrupted").items
        assert [t.thread_id for t in waiting] == ["waiting"]
        done = graph.invoke(Command(resume="yes"), run_cfg("waiting"))
        assert done["messages"][-1].content == "you said yes"
        assert saver.threads.get("waiting").run_state == "idle"


#: The CLI, with the disk full after three lines of an export (ENOSPC on the next write).
FULL_DISK = """
import errno, sys
from langgraph_store_dual.transfer import jsonl
written, dump = [], jsonl._dump
def full(f, line):
    if len(written) == 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    written.append(line)
    dump(f, line)
jsonl._dump = full
from langgraph_store_dual.cli import main
main(sys.argv[1:])
"""


def test_an_export_on_a_full_disk_fails_in_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    with from_url(source) as saver:
        fill(saver)
    out = tmp_path / "threads.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "export", "--url", source, "--all", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"error: [Errno 28] No space left on device: '{out}'"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("threads")) == []
