"""The PostgreSQL / PgBouncer test fixtures of pg_server.py work as documented."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pg_server
import psycopg
import pytest

TESTS_DIR = Path(__file__).resolve().parent

USER_RELATIONS = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
"""
USER_SCHEMAS = """
    SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace
    WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'
"""
USER_FUNCTIONS = """
    SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
"""


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None, **kwargs)


def test_pg_url_is_the_session_database(pg_clean_url: str, pg_url: str) -> None:
    """A database of this session's own (other tests may have used it: `pg_clean_url`
    empties it first)."""
    assert pg_url.startswith("postgresql://") and pg_clean_url == pg_url
    with connect(pg_url) as conn:
        (dbname,) = conn.execute("SELECT current_database()").fetchone()
        assert dbname.startswith("lgsd_test_")
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        assert conn.execute(USER_RELATIONS).fetchone() == (0,)
        assert conn.execute(USER_FUNCTIONS).fetchone() == (0,)
        assert conn.execute(USER_SCHEMAS).fetchone() == (["public"],)


def test_pg_clean_url_drops_everything(pg_clean_url: str) -> None:
    with connect(pg_clean_url) as conn:
        assert conn.execute(USER_RELATIONS).fetchone() == (0,)
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, v jsonb)")
        conn.execute("INSERT INTO t (v) VALUES ('{}')")
        conn.execute("CREATE VIEW v AS SELECT * FROM t")
        conn.execute("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE TYPE mood AS ENUM ('ok')")
        conn.execute("CREATE SCHEMA other")
        conn.execute("CREATE TABLE other.t (id int)")
        assert conn.execute(USER_RELATIONS).fetchone()[0] > 0
        # a connection left holding a lock must not make the reset hang
        holder = connect(pg_clean_url)
        holder.autocommit = False
        holder.execute("SELECT * FROM t")  # AccessShareLock, transaction left open
        start = time.monotonic()
        pg_server.reset_database(pg_clean_url)  # waits a little, then terminates holders
        assert time.monotonic() - start < 10
        holder.close()
    with connect(pg_clean_url) as conn:
        assert conn.execute(USER_RELATIONS).fetchone() == (0,)
        assert conn.execute(USER_FUNCTIONS).fetchone() == (0,)
        assert conn.execute(USER_SCHEMAS).fetchone() == (["public"],)
        conn.execute("CREATE TABLE t (id int)")  # public is usable again


def test_pgbouncer_url_pools_per_transaction(pgbouncer_url: str, pg_url: str) -> None:
    assert pgbouncer_url != pg_url
    admin = pg_server.with_dbname(pgbouncer_url, "pgbouncer")
    with psycopg.connect(admin, autocommit=True, cursor_factory=psycopg.ClientCursor) as console:
        config = {row[0]: row[1] for row in console.execute("SHOW CONFIG").fetchall()}
    assert config["pool_mode"] == "transaction"
    assert config["default_pool_size"] == str(pg_server.PGBOUNCER_POOL_SIZE)
    assert config["listen_addr"] == "127.0.0.1"

    with connect(pgbouncer_url) as a, connect(pgbouncer_url) as b:
        dbname = pg_url.rsplit("/", 1)[1]
        assert a.execute("SELECT current_database()").fetchone() == (dbname,)
        # between transactions a client holds no server connection: b reuses a's
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        pid_b = b.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pid_a == pid_b
        # an open transaction pins its server connection: b must get another one
        with a.transaction():
            pinned = a.execute("SELECT pg_backend_pid()").fetchone()[0]
            assert b.execute("SELECT pg_backend_pid()").fetchone()[0] != pinned
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pinned
        # repeated statements with parameters work without server-side prepares
        for i in range(10):
            assert a.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)


def test_pg_terminate_kills_backends(pg_url: str, pg_terminate) -> None:
    victim = connect(pg_url, application_name="lgsd-victim")
    bystander = connect(pg_url, application_name="lgsd-bystander")
    try:
        victim.execute("SELECT 1")
        assert pg_terminate(pg_url, application_name="lgsd-victim") == 1
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        # without application_name every other backend of the database goes: keep this
        # test from killing connections that session fixtures may hold
        assert pg_terminate(pg_url, application_name="lgsd-bystander") == 1
        with pytest.raises(psycopg.OperationalError):
            bystander.execute("SELECT 1")
    finally:
        victim.close()
        bystander.close()
    with connect(pg_url) as conn:  # the database itself is fine
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_urls_and_redaction() -> None:
    url = pg_server.make_url(
        {"user": "u@x", "password": "p:w/d", "host": "127.0.0.1", "port": "5433", "dbname": "d b"}
    )
    assert url == "postgresql://u%40x:p%3Aw%2Fd@127.0.0.1:5433/d%20b"
    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == "p:w/d"
    assert "p:w/d" not in pg_server.redact(url) and "p%3Aw" not in pg_server.redact(url)
    assert pg_server.with_dbname(url, "other").endswith("@127.0.0.1:5433/other")
    sock = pg_server.make_url({"user": "postgres", "host": "/var/run/postgresql", "dbname": "x"})
    assert psycopg.conninfo.conninfo_to_dict(sock)["host"] == "/var/run/postgresql"
    assert pg_server.with_dbname("host=h port=1 dbname=a", "b") == "postgresql://h:1/b"


def test_missing_pgbouncer_says_how_to_install(monkeypatch, pg_url: str) -> None:
    monkeypatch.setattr(pg_server, "_find_pgbouncer", lambda: None)
    with (
        pytest.raises(FileNotFoundError, match=r"apt-get install -y pgbouncer"),
        pg_server.run_pgbouncer(pg_url),
    ):
        pass


# ------------------------------------------------------------ nested pytest runs


def run_inner_pytest(tmp_path: Path, test_source: str, **env: str) -> subprocess.CompletedProcess:
    """Run pytest on one test file in a scratch directory wired like tests/conftest.py."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text("from pg_server import *  # noqa: F403\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LGSD_")}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])
    )
    full_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # fast start: pg_server needs no plugin
    full_env.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            f"--basetemp={tmp_path / 'basetemp'}",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


THROWAWAY_TEST = """
    import os, pwd
    import psycopg

    def test_throwaway(pg_url, pg_clean_url, pgbouncer_url, pg_server_url, tmp_path_factory):
        assert ":5432/" not in pg_server_url
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int)")
            datadir = conn.execute("SHOW data_directory").fetchone()[0]
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            with open(f"/proc/{pid}/status") as status:
                uid = int(next(l for l in status if l.startswith("Uid:")).split()[1])
        if os.geteuid() == 0:
            assert uid != 0 and pwd.getpwuid(uid).pw_name in ("postgres", "nobody")
        with psycopg.connect(pgbouncer_url, autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        with open(os.environ["LGSD_REPORT"], "w") as report:
            report.write(f"{datadir}\\n{pg_server_url}\\n")
"""


def test_throwaway_server_path(tmp_path: Path) -> None:
    """LGSD_TEST_POSTGRES=throwaway: a private server is started (as postgres when root),
    serves pg_url and pgbouncer_url, and is stopped and deleted afterwards."""
    report = tmp_path / "report.txt"
    start = time.monotonic()
    result = run_inner_pytest(
        tmp_path, THROWAWAY_TEST, LGSD_TEST_POSTGRES="throwaway", LGSD_REPORT=str(report)
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    datadir, server_url = report.read_text().split()
    assert not Path(datadir).exists(), "the throwaway data directory was not removed"
    assert pg_server._probe(server_url, timeout=2) is not None, "the throwaway server still runs"
    assert elapsed < 30, f"throwaway run took {elapsed:.1f}s"


def test_no_server_errors_instead_of_skipping(tmp_path: Path) -> None:
    result = run_inner_pytest(
        tmp_path,
        "def test_needs_pg(pg_url):\n    pass\n",
        LGSD_TEST_POSTGRES="existing",
        LGSD_TEST_POSTGRES_URL="postgresql://nobody:secret-pw@127.0.0.1:9/postgres",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "unreachable" in result.stdout
    assert "secret-pw" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def test_plain():\n    pass\n", 1),
        ("def test_fails(pg_url):\n    assert False\n", 1),
        ("import pytest\n@pytest.mark.skip\ndef test_skipped(pg_url):\n    pass\n", 1),
        ("", 1),  # no tests at all (pytest's exit 5)
        ("def test_uses_pg(pg_clean_url):\n    pass\n", 0),
    ],
    ids=["no-pg-test", "pg-test-failed", "pg-test-skipped", "no-tests", "pg-test-passed"],
)
def test_require_postgres_guard(
    tmp_path: Path, source: str, expected: int, pg_server_url: str
) -> None:
    result = run_inner_pytest(
        tmp_path, source, LGSD_REQUIRE_POSTGRES="1", LGSD_TEST_POSTGRES_URL=pg_server_url
    )
    assert result.returncode == expected, result.stdout + result.stderr
    if expected:
        assert "no test using PostgreSQL" in result.stdout
    # without the variable the guard is off
    if not source:
        assert run_inner_pytest(tmp_path, source).returncode == pytest.ExitCode.NO_TESTS_COLLECTED
