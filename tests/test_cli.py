"""The `langgraph-store-dual` command on a SQLite file and on the real PostgreSQL test
database, holding the checkpoints of real graphs.

Commands run in a subprocess: alone through `python -m langgraph_store_dual`, or several
in one process through the console script's `main(argv)` (`batch`), which keeps the
file fast (a process start costs about a second)."""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from scenarios import CHAT_TURN_B, CHAT_TURNS_A, Recorder, _human, build_chat_graph
from scenarios import build_interrupt_graph as interrupt_graph

from langgraph_store_dual import from_url, maintenance
from langgraph_store_dual.postgres.dialect import POSTGRES

ROOT = Path(__file__).resolve().parents[1]
LATEST = len(maintenance.dialect(maintenance.engine_of("sqlite:///x.db")).migrations)
SECRET = "Sw0rdfish-never-shown"


@dataclass
class Run:
    """What one command line did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.out)

    def ok(self) -> str:
        assert self.code == 0, self
        return self.out

    def failed(self, code: int) -> str:
        """stderr of a run that must exit with `code`, without a traceback."""
        assert self.code == code, self
        assert "Traceback" not in self.err
        return self.err


def _env(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    if url is not None:
        env["DATABASE_URL"] = url
    return env


def python(*args: str, url: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python ARGS` with this tree importable; `url` goes in DATABASE_URL."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_env(url),
        cwd=cwd,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def cli(*args: str, url: str | None = None, cwd: Path = ROOT) -> Run:
    """Run `python -m langgraph_store_dual ARGS`."""
    done = python("-m", "langgraph_store_dual", *args, url=url, cwd=cwd)
    return Run(done.returncode, done.stdout, done.stderr)


#: Runs command lines one after the other in one process. `fakes` per line: None leaves
#: the transfer modules alone, False hides them, True puts recording fakes in their place.
DRIVER = textwrap.dedent(
    """
    import json, sys, types
    from langgraph_store_dual.transfer.report import TableCount, TransferReport

    calls = []
    def fake(name):
        def run(*args, **kwargs):
            calls.append([name, [str(a) for a in args], {k: str(v) for k, v in kwargs.items()}])
            report = TransferReport(dry_run=bool(kwargs.get("dry_run")))
            report.add("threads", copied=2, skipped=1)
            report.counts.append(TableCount("threads", 3, 3))
            return report
        return run

    MODULES = {"migrate": ["migrate"], "official": ["import_official"],
               "jsonl": ["export_threads", "import_threads"], "backup": ["backup", "restore"]}

    from langgraph_store_dual.cli import main
    for fakes, argv in json.loads(sys.argv[1]):
        for module, names in MODULES.items():
            if fakes is not None:
                fakes_of = types.SimpleNamespace(**{n: fake(n) for n in names})
                sys.modules["langgraph_store_dual.transfer." + module] = fakes_of if fakes else None
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        for stream in (sys.stdout, sys.stderr):
            print(f"\\nEXIT {code}", file=stream, flush=True)
    print("CALLS", json.dumps(calls))
    """
)


def batch(
    *lines: list[str], url: str | None = None, fakes: bool | None = None, cwd: Path = ROOT
) -> tuple[list[Run], list[Any]]:
    """Run command lines in one process (see DRIVER): their runs, and the transfer calls."""
    done = python("-c", DRIVER, json.dumps([[fakes, line] for line in lines]), url=url, cwd=cwd)
    assert done.returncode == 0, done.stderr
    outs = re.split(r"\nEXIT (\d+)\n", done.stdout)
    errs = re.split(r"\nEXIT (\d+)\n", done.stderr)
    runs = [
        Run(int(code), out, err)
        for code, out, err in zip(outs[1::2], outs[0::2], errs[0::2], strict=False)
    ]
    return runs, json.loads(outs[-1].removeprefix("CALLS "))


def runs(*lines: list[str], url: str | None = None) -> list[Run]:
    return batch(*lines, url=url)[0]


def fill(url: str) -> None:
    """Threads of real graphs: a chat of ana's (metadata tier=gold), a chat of carl's and
    an interrupted run of bob's."""
    with from_url(url) as saver:
        chat = build_chat_graph(saver, Recorder("sync"))
        for turn in CHAT_TURNS_A:
            chat.invoke(_human(turn), {"configurable": {"thread_id": "chat-a", "user_id": "ana"}})
        config = {"configurable": {"thread_id": "chat-b", "user_id": "carl"}}
        chat.invoke(_human(CHAT_TURN_B), config)
        ask = interrupt_graph(saver, Recorder("sync"))
        config = {"configurable": {"thread_id": "ask-1", "user_id": "bob"}}
        ask.invoke({"value": 1, "log": []}, config)
        saver.threads.update("chat-a", metadata={"tier": "gold"})


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database of the engine with nothing in it (the SQLite file exists)."""
    if engine == "postgres":
        return str(request.getfixturevalue("pg_clean_url"))
    path = tmp_path / "agents.db"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


@pytest.fixture
def url(empty_url: str) -> str:
    fill(empty_url)
    return empty_url


def checkpoint_count(url: str) -> int:
    with from_url(url) as saver:
        return len(list(saver.list(None)))


def ids(page: dict[str, Any]) -> list[str]:
    return sorted(t["thread_id"] for t in page["threads"])


# -- doctor and setup ----------------------------------------------------------------------


def test_doctor_reports_a_healthy_database(url: str, engine: str) -> None:
    doctor, sql, setup = runs(
        ["doctor", "--json"], ["setup", "--print-sql"], ["setup", "--json"], url=url
    )
    report = doctor.json()
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert statuses["reachable"] == statuses["schema"] == statuses["references"] == "ok"
    assert "fail" not in statuses.values()
    assert report["schema"] == {"version": LATEST, "latest": LATEST}
    rows = {t["table"]: t["rows"] for t in report["tables"]}
    assert rows["threads"] == 3 and rows["checkpoints"] == checkpoint_count(url)
    assert all(t["bytes"] > 0 for t in report["tables"])
    assert report["largest_threads"][0]["thread_id"] == "chat-a"
    assert report["reference_problems"] == []
    if engine == "postgres":
        assert int(report["settings"]["max_connections"]) > 0
        assert statuses["pooler"] == "ok" and report["pooler"] is False
        connections = next(c for c in report["checks"] if c["check"] == "connections")
        assert "pool_max_size=10 per process" in connections["detail"]
    else:
        assert report["settings"]["journal_mode"] == "wal"
    assert "nothing to apply" in sql.ok()
    assert setup.json() == {"engine": engine, "before": LATEST, "version": LATEST}
    text = cli("doctor", "--url", url).ok()  # the real entry point, a human report
    assert "Largest threads" in text and "chat-a" in text and "references" in text


def at_version(url: str, engine: str, version: int) -> None:
    """Take an empty database to schema `version` the way setup() does."""
    e = maintenance.engine_of(url)
    d = maintenance.dialect(e)
    conn: Any = (
        sqlite3.connect(maintenance.existing_sqlite_path(url), isolation_level=None)
        if engine == "sqlite"
        else psycopg.connect(url, autocommit=True)
    )
    with conn:
        conn.execute(d.create_version_table)
        for v in range(version):
            for sql in d.migrations[v]:
                conn.execute(sql)
            conn.execute(d.insert_version, {"version": v + 1})


def run_script(url: str, engine: str, script: str) -> None:
    if engine == "sqlite":
        conn = sqlite3.connect(maintenance.existing_sqlite_path(url), isolation_level=None)
        conn.executescript(script)
        conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(script)  # no parameters: one simple query of many statements


def test_print_sql_and_pending_migrations(empty_url: str, engine: str) -> None:
    url = empty_url
    (fresh,) = runs(["setup", "--print-sql"], url=url)
    assert "schema: no schema" in fresh.ok() and "-- version 1\n" in fresh.out
    at_version(url, engine, LATEST - 2)
    doctor, listed, pending, script, again = runs(
        ["doctor", "--json"],
        ["threads", "list"],
        ["setup", "--print-sql", "--json"],
        ["setup", "--print-sql"],
        ["doctor", "--json"],
        url=url,
    )
    report = doctor.json()
    assert report["schema"]["pending"] == [LATEST - 1, LATEST]
    assert {c["check"]: c["status"] for c in report["checks"]}["schema"] == "warn"
    assert "setup" in listed.failed(5)  # the CLI's savers never migrate on their own
    assert pending.json()["current"] == LATEST - 2 and pending.json()["latest"] == LATEST
    sql = script.ok()
    assert f"-- version {LATEST - 1}" in sql and f"-- version {LATEST}" in sql
    assert "-- version 1\n" not in sql
    assert again.json()["schema"]["version"] == LATEST - 2  # printing applied nothing
    run_script(url, engine, sql)  # what a DBA runs
    doctor, listed = runs(["doctor", "--json"], ["threads", "list", "--json"], url=url)
    assert doctor.json()["schema"] == {"version": LATEST, "latest": LATEST}
    assert listed.json()["total"] == 0


def test_no_schema_and_newer_schema(empty_url: str, engine: str) -> None:
    doctor, listed, setup = runs(
        ["doctor"], ["threads", "list"], ["setup", "--json"], url=empty_url
    )
    assert doctor.failed(5) == "" and "setup" in doctor.out
    assert "no langgraph-store-dual schema" in listed.failed(5)
    assert setup.json() == {"engine": engine, "before": None, "version": LATEST}
    run_script(empty_url, engine, "INSERT INTO schema_version (version) VALUES (99)")
    listed, doctor = runs(["threads", "list"], ["doctor", "--json"], url=empty_url)
    assert "newer" in listed.failed(5)
    doctor.failed(5)
    assert "upgrade" in json.dumps(json.loads(doctor.out)["checks"])


# -- threads, history, show, diff -------------------------------------------------------------


def test_threads_commands(url: str) -> None:
    done = runs(
        ["threads", "list", "--json"],
        ["threads", "list", "--json", "--user", "ana"],
        ["threads", "list", "--json", "--run-state", "interrupted"],
        ["threads", "list", "--json", "--meta", "tier=gold", "--limit", "1"],
        ["threads", "list"],
        ["threads", "show", "chat-a", "--json"],
        ["threads", "rename", "chat-a", "[/] Sums [b]", "--json"],
        ["threads", "archive", "chat-a", "chat-b"],
        ["threads", "list", "--json", "--status", "archived"],
        ["threads", "unarchive", "chat-b"],
        ["threads", "list", "--json", "--status", "active"],
        ["threads", "delete", "chat-b"],
        ["threads", "delete", "chat-b", "--yes", "--json"],
        ["threads", "show", "chat-b"],
        ["threads", "archive", "nope"],
        ["threads", "list", "--json", "--limit", "2"],
        ["threads", "show", "chat-a"],
        url=url,
    )
    assert ids(done[0].json()) == ["ask-1", "chat-a", "chat-b"]
    assert ids(done[1].json()) == ["chat-a"]
    assert ids(done[2].json()) == ["ask-1"]
    page = done[3].json()
    assert ids(page) == ["chat-a"] and page["total"] == 1 and page["next_cursor"] is None
    text = done[4].ok()
    assert "interrupted" in text and "What is 2 + 3?" in text and "3 of 3" in text
    shown = done[5].json()
    assert shown["thread"]["user_id"] == "ana" and shown["stats"]["checkpoints"] > 5
    assert done[6].json()["title"] == "[/] Sums [b]"
    done[7].ok()
    assert ids(done[8].json()) == ["chat-a", "chat-b"]
    done[9].ok()
    assert ids(done[10].json()) == ["ask-1", "chat-b"]
    assert "--yes" in done[11].failed(2)  # stdin is no terminal: nothing deleted
    assert done[12].json() == {"deleted": ["chat-b"]}
    assert "no thread 'chat-b'" in done[13].failed(4)
    assert "no thread 'nope'" in done[14].failed(4)
    first = done[15].json()
    assert len(first["threads"]) == 2 and first["total"] == 2 and first["next_cursor"] is None
    assert "title: [/] Sums [b]" in done[16].ok()  # shown as stored, not as markup


def test_history_show_and_diff(url: str) -> None:
    history, short, table, chat, asking, unknown = runs(
        ["history", "chat-a", "--json"],
        ["history", "chat-a", "--json", "--limit", "2"],
        ["history", "chat-a"],
        ["show", "chat-a"],
        ["show", "ask-1"],
        ["show", "chat-a", "1f0-no-such"],
        url=url,
    )
    lines = history.json()
    with from_url(url) as saver:
        stored = saver.threads.history("chat-a", limit=None)
        latest = saver.get_tuple({"configurable": {"thread_id": "chat-a"}})
    assert latest is not None
    assert [line["checkpoint_id"] for line in lines] == [
        t.config["configurable"]["checkpoint_id"] for t in stored
    ]
    assert all(a["parent_id"] == b["checkpoint_id"] for a, b in itertools.pairwise(lines))
    assert [line["step"] for line in lines] == list(range(len(lines) - 2, -2, -1))
    assert lines[0]["messages"] == len(latest.checkpoint["channel_values"]["messages"])
    assert {line["node"] for line in lines} >= {"agent", "tools"}
    assert {line["source"] for line in lines} == {"input", "loop"}
    assert len(short.json()) == 2
    assert lines[0]["checkpoint_id"] in table.ok() and "agent" in table.out

    for line in ("human: What is 2 + 3?", "-> add(a=2, b=3)", "tool (add): 5", "ai: 2 + 3 = 5"):
        assert line in chat.ok()
    assert "waiting for input" in asking.ok() and "What is your name?" in asking.out
    assert "no checkpoint" in unknown.failed(4)

    oldest, newest = lines[-1]["checkpoint_id"], lines[0]["checkpoint_id"]
    middle = next(line["checkpoint_id"] for line in lines if line["messages"] == 4)
    old, changes, text, missing = runs(
        ["show", "chat-a", oldest, "--json"],
        ["diff", "chat-a", middle, newest, "--json"],
        ["diff", "chat-a", middle, newest],
        ["diff", "chat-a", "1f0-no-such", middle],
        url=url,
    )
    assert old.json()["checkpoint_id"] == oldest
    added = [m["content"] for m in changes.json()["channels"]["messages"]["added"]]
    assert added[0] == "Thanks! And hello?" and added[-1] == "4 * 5 = 20 and 1 + 2 = 3"
    assert "+ human: Multiply 4 by 5" in text.ok()
    missing.failed(4)


# -- retention ---------------------------------------------------------------------------------


def test_prune_dry_run_prune_and_vacuum(url: str, engine: str) -> None:
    before = checkpoint_count(url)
    preview, old = runs(
        ["prune", "--keep-last", "2", "--dry-run", "--json"],
        ["prune", "--older-than", "30d", "--dry-run", "--json"],
        url=url,
    )
    counted = preview.json()
    assert counted["dry_run"] is True and counted["policy"] == "keep_last"
    assert counted["checkpoints"] == before - 3 * 2 and counted["threads"] == 2  # ask-1 has 2
    assert checkpoint_count(url) == before  # nothing went
    assert old.json()["checkpoints"] == 0
    done = runs(
        ["prune", "--keep-last", "2", "--json"],
        ["history", "chat-a", "--json"],
        ["prune", "--idle", "0s", "--user", "bob", "--dry-run", "--json"],
        ["prune", "--idle", "0s", "--dry-run"],
        ["prune", "--idle", "0s", "--user", "bob", "--json"],
        ["threads", "list", "--json"],
        ["prune"],
        ["prune", "--keep-last", "1", "--user", "x"],
        ["prune", "--idle", "soon"],
        ["vacuum", "--json"],
        ["doctor", "--json"],
        url=url,
    )
    pruned = done[0].json()
    assert pruned["checkpoints"] == counted["checkpoints"] and pruned["dry_run"] is False
    assert len(done[1].json()) == 2
    idle = done[2].json()
    assert idle["thread_ids"] == ["ask-1"] and idle["checkpoints"] == 2
    assert "would delete at most 3 idle thread(s)" in done[3].ok()
    assert done[4].json()["thread_ids"] == ["ask-1"]
    assert ids(done[5].json()) == ["chat-a", "chat-b"]
    assert "exactly one of" in done[6].failed(2)
    assert "--user goes with --idle" in done[7].failed(2)
    assert "not a duration" in done[8].failed(2)
    cleaned = done[9].json()
    if engine == "sqlite":
        assert cleaned["statements"] == ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
        assert cleaned["bytes_after"] < cleaned["bytes_before"]
    else:
        assert "VACUUM (ANALYZE) checkpoints" in cleaned["statements"]
    assert done[10].json()["reference_problems"] == []


# -- errors ------------------------------------------------------------------------------------


def test_nothing_is_created_by_accident(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    url = f"sqlite:///{missing}"
    lines = [["threads", "list"], ["doctor"], ["setup"], ["setup", "--print-sql"]]
    for run in runs(*lines, url=url):
        shown = run.failed(2) + run.out  # doctor reports it in its table
        assert f"no SQLite database at {missing}" in shown and "setup --create" in shown
    assert not missing.exists()
    assert "no SQLite database" in cli("history", "t", url=url).failed(2)
    assert not missing.exists()
    created, listed, no_url, mysql = runs(
        ["setup", "--create", "--json"],
        ["threads", "list", "--json"],
        ["threads", "list", "--url", ""],
        ["doctor", "--url", "mysql://db/x"],
        url=url,
    )
    assert created.json()["version"] == LATEST and listed.json()["total"] == 0
    assert no_url.code == 2
    assert "unknown database URL scheme 'mysql'" in mysql.failed(2)
    assert "Missing option '--url'" in cli("threads", "list").failed(2)


def test_unreachable_database_and_password_never_shown(pg_server_url: str) -> None:
    server = conninfo_to_dict(pg_server_url)
    wrong_db = f"postgresql://postgres:{SECRET}@{server['host']}:{server['port']}/lgsd_no_db"
    nothing_there = f"postgresql://app:{SECRET}@127.0.0.1:1/agents"
    keywords = f"host=127.0.0.1 port=1 user=app password={SECRET} dbname=agents"
    lines = [["threads", "list", "--url", u] for u in (wrong_db, nothing_there, keywords)]
    for run in [*runs(*lines), cli("history", "t", url=wrong_db)]:
        assert "cannot connect to PostgreSQL" in run.failed(3) and "***" in run.err
        assert SECRET not in run.err + run.out
    (doctor,) = runs(["doctor", "--json", "--url", nothing_there])
    doctor.failed(3)
    assert SECRET not in doctor.out + doctor.err
    assert json.loads(doctor.out)["checks"][0]["status"] == "fail"


# -- transfers (the functions are faked or hidden), the missing extra, bench -----------------

TRANSFERS = [
    ["migrate", "sqlite:///a.db", "postgresql://h/b"],
    ["import-official", "sqlite:///a.db", "sqlite:///b.db"],
    ["export", "--all", "--url", "sqlite:///a.db", "-o", "out.jsonl"],
    ["import", "in.jsonl", "--url", "sqlite:///a.db"],
    ["backup", "copy.db", "--url", "sqlite:///a.db"],
    ["restore", "copy.db", "--url", "sqlite:///a.db"],
]
MODULE = {"import-official": "official", "export": "jsonl", "import": "jsonl", "restore": "backup"}


def test_transfer_commands_without_their_module(tmp_path: Path) -> None:
    done, calls = batch(*TRANSFERS, fakes=False, cwd=tmp_path)
    assert calls == []
    for line, run in zip(TRANSFERS, done, strict=True):
        module = MODULE.get(line[0], line[0])
        assert f"no langgraph_store_dual.transfer.{module}." in run.failed(1)


def test_transfer_commands_pass_their_arguments(tmp_path: Path) -> None:
    migrate = ["migrate", "sqlite:///a.db", "postgresql://h/b", "--dry-run", "--threads-only"]
    done, calls = batch(
        [*migrate, "--since", "2026-01-02", "--batch-size", "50", "--json"],
        ["import-official", "sqlite:///a.db", "sqlite:///b.db", "--dry-run"],
        ["export", "t1", "t2", "--url", "sqlite:///a.db", "-o", "out.jsonl"],
        ["export", "--user", "ana", "--url", "sqlite:///a.db"],
        ["import", "in.jsonl", "--url", "sqlite:///a.db", "--json"],
        ["backup", "copy.db", "--url", "sqlite:///a.db"],
        ["restore", "copy.db", "--url", "sqlite:///a.db"],
        ["migrate", "sqlite:///a.db"],  # no target
        ["export", "--url", "sqlite:///a.db"],  # nothing chosen
        ["migrate", "sqlite:///a.db", "sqlite:///b.db", "--since", "someday"],
        fakes=True,
        cwd=tmp_path,
    )
    assert [run.code for run in done] == [0] * 7 + [2] * 3
    assert [call[0] for call in calls] == [
        "migrate",
        "import_official",
        "export_threads",
        "export_threads",
        "import_threads",
        "backup",
        "restore",
    ]
    args, options = calls[0][1], calls[0][2]
    assert args == ["sqlite:///a.db", "postgresql://h/b"]
    assert options["dry_run"] == options["threads_only"] == "True"
    assert options["since"] == "2026-01-02 00:00:00+00:00" and options["batch_size"] == "50"
    assert options["progress"] == "None"  # no bar off a terminal
    report = done[0].json()
    assert report["ok"] is True and report["copied"] == {"threads": 2} and report["dry_run"]
    assert "threads: would copy 2, already there 1" in done[1].ok()
    assert calls[2][2]["thread_ids"] == "['t1', 't2']" and calls[2][1][1] == "out.jsonl"
    assert calls[3][2]["user_id"] == "ana" and calls[3][2]["thread_ids"] == "None"
    assert "exported" in done[3].err  # the data went to stdout, the report to stderr
    assert done[4].json()["counts"] == [{"kind": "threads", "source": 3, "target": 3}]
    assert "threads: copied 2, already there 1" in done[5].ok() and "ok in" in done[5].out
    assert calls[6][1] == ["copy.db", "sqlite:///a.db"]  # restore(path, url)
    assert "Missing argument" in done[7].failed(2)
    assert "exactly one of" in done[8].failed(2)
    assert "someday" in done[9].failed(2)


def test_missing_extra_and_bench(tmp_path: Path) -> None:
    hide_typer = (
        "import sys, runpy; sys.modules['typer'] = None; sys.argv = ['x', '--help']; "
        "runpy.run_module('langgraph_store_dual', run_name='__main__')"
    )
    hide_benchmarks = (
        "import sys; sys.modules['benchmarks'] = None; "
        "from langgraph_store_dual.cli import main; main(['bench', 'run'])"
    )
    for code, expected in (
        (hide_typer, "the langgraph-store-dual command needs: pip install"),
        (hide_benchmarks, "benchmarks package is not importable"),
    ):
        done = python("-c", code, cwd=tmp_path)
        assert done.returncode == (2 if code is hide_typer else 1), done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        if code is hide_typer:
            assert done.stderr.strip().endswith("pip install 'langgraph-store-dual[cli]'")
            assert len(done.stderr.strip().splitlines()) == 1
    bench = cli("bench", "--help").ok()  # passed on to python -m benchmarks
    assert "python -m benchmarks" in bench and "run" in bench


def test_doctor_through_pgbouncer(pg_clean_url: str, pgbouncer_url: str) -> None:
    fill(pg_clean_url)
    flagged = pgbouncer_url + ("&" if "?" in pgbouncer_url else "?") + "pgbouncer=true"
    plain, bouncer = runs(
        ["doctor", "--json", "--url", pgbouncer_url], ["doctor", "--json", "--url", flagged]
    )
    checks = {c["check"]: c for c in plain.json()["checks"]}
    assert checks["pooler"]["status"] == "warn" and "pgbouncer=true" in checks["pooler"]["fix"]
    report = bouncer.json()
    checks = {c["check"]: c for c in report["checks"]}
    assert report["pooler"] is True and checks["pooler"]["status"] == "ok"
    assert checks["references"]["status"] == "ok" and report["largest_threads"]


def test_progress_bars_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph_store_dual.cli.transfer import progress_bar
    from langgraph_store_dual.transfer.report import Progress

    with progress_bar() as off_terminal:
        assert off_terminal is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar() as update:
        assert update is not None
        for done in (1, 2, 3):
            update(Progress("threads", done, 3))
        update(Progress("checkpoints", 40, None))
    shown = capsys.readouterr().err
    assert "threads" in shown and "3/3" in shown and "40/?" in shown


def test_missing_functions_are_reported_and_printed_for_a_dba(pg_clean_url: str) -> None:
    """The functions standing in for statements behind PgBouncer belong to the schema:
    one dropped, doctor warns, the CLI's savers refuse, `setup --print-sql` prints just
    it (and `--grant-to` the right to run every one); the printed script mends it."""
    url = pg_clean_url
    runs(["setup"], url=url)[0].ok()
    name = sorted(r.name for r in POSTGRES.routines.values())[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP FUNCTION {name}")
    doctor, listed, printed, granted = runs(
        ["doctor", "--json"],
        ["threads", "list"],
        ["setup", "--print-sql"],
        ["setup", "--print-sql", "--grant-to", "app"],
        url=url,
    )
    report = doctor.json()
    assert report["schema"]["missing_functions"] == 1
    assert {c["check"]: c["status"] for c in report["checks"]}["schema"] == "warn"
    assert "call setup()" in listed.failed(5)
    sql = printed.ok()
    assert sql.count("CREATE FUNCTION") == 1 and f"CREATE FUNCTION {name}(" in sql
    every = ", ".join(sorted(r.name for r in POSTGRES.routines.values()))
    assert f'GRANT EXECUTE ON FUNCTION {every} TO "app"' in granted.ok()
    run_script(url, "postgres", sql)
    doctor, listed = runs(["doctor", "--json"], ["threads", "list", "--json"], url=url)
    assert "missing_functions" not in doctor.json()["schema"]
    assert listed.json()["total"] == 0
