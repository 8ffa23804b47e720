"""PostgreSQL and PgBouncer fixtures for the test-suite.

Wiring (in ``tests/conftest.py``; pytest puts ``tests/`` on ``sys.path`` because the
directory has no ``__init__.py`` and the default ``prepend`` import mode is used)::

    from pg_server import *  # noqa: F403  (fixtures and the LGSD_REQUIRE_POSTGRES guard hooks)

(``pytest_plugins = ["pg_server"]`` in ``tests/conftest.py`` works as well.)

Fixtures
--------
``pg_server_url``  (session)  maintenance URL of the server in use (``.../postgres``).
``pg_url``         (session)  URL of a fresh, empty database ``lgsd_test_<random>`` created
                              for the session and dropped at its end.
``pg_clean_url``   (function) ``pg_url`` after every user schema was dropped and ``public``
                              recreated empty: cheap isolation between tests.
``pgbouncer_url``  (session)  the same database reached through a real PgBouncer in
                              transaction pooling mode (pool size 4) on 127.0.0.1.
``pg_terminate``   (function) ``terminate_backends(url, application_name=None)``: kill the
                              client backends of ``url``'s database (all but its own, or
                              those with that application_name); returns how many.

PgBouncer notes: clients must disable server-side prepared statements (psycopg:
``prepare_threshold=None``; PgBouncer 1.18 has no prepared-statement support);
``auth_type = any`` logs every client in as the server URL's user; the startup
parameters ``options`` and ``extra_float_digits`` are ignored; the admin console is
database ``pgbouncer`` (use ``cursor_factory=psycopg.ClientCursor``, autocommit).

Which server
------------
1. ``LGSD_TEST_POSTGRES_URL`` (maintenance database of an existing server) when set;
   it must work, there is no fallback.
2. else the conventional local server ``postgresql://postgres@127.0.0.1:5432/postgres``;
3. else a throwaway server started from the installed binaries with pytest-postgresql's
   ``PostgreSQLExecutor`` (``pg_ctl initdb`` / ``start`` / ``stop``).  As root it runs as
   the ``postgres`` OS user (``nobody`` if there is none) via a generated pg_ctl shim.

``LGSD_TEST_POSTGRES=throwaway`` forces 3; ``LGSD_TEST_POSTGRES=existing`` forbids it.
When no server can be had, every test that needs one errors (never skips).

``LGSD_REQUIRE_POSTGRES=1`` (set by ``.ci/run``): the session fails (exit status 1)
unless at least one test using ``pg_url`` ran and passed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

__all__ = [
    "LOCAL_URL",
    "make_url",
    "pg_clean_url",
    "pg_server_url",
    "pg_terminate",
    "pg_url",
    "pgbouncer_url",
    "pytest_runtest_logreport",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "redact",
    "reset_database",
    "run_pgbouncer",
    "terminate_backends",
    "throwaway_server",
    "with_dbname",
]

ENV_URL = "LGSD_TEST_POSTGRES_URL"
ENV_MODE = "LGSD_TEST_POSTGRES"  # auto (default) | throwaway | existing
ENV_REQUIRE = "LGSD_REQUIRE_POSTGRES"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

PGBOUNCER_POOL_SIZE = 4


# --------------------------------------------------------------------------- URLs


def make_url(params: Mapping[str, object]) -> str:
    """A libpq URL from connection parameters (as given by ``conninfo_to_dict``)."""
    rest = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    user = rest.pop("user", None)
    password = rest.pop("password", None)
    host = rest.pop("host", None)
    port = rest.pop("port", None)
    dbname = rest.pop("dbname", None)
    netloc = ""
    if user is not None:
        netloc = quote(user, safe="")
        if password is not None:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    elif password is not None:
        rest["password"] = password
    if host is not None and ("," in host or host.startswith("/") or host.startswith("@")):
        # socket directories and host lists are clearer as query parameters
        rest["host"] = host
        if port is not None:
            rest["port"] = port
    elif host is not None:
        netloc += f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
    elif port is not None:
        rest["port"] = port
    url = f"postgresql://{netloc}/"
    if dbname is not None:
        url += quote(dbname, safe="")
    if rest:
        url += "?" + urlencode(rest)
    return url


def with_dbname(url: str, dbname: str) -> str:
    """``url`` (URL or ``key=value`` conninfo) pointed at another database, as a URL."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_url(params)


def redact(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        params = conninfo_to_dict(url)
    except Exception:  # unparsable: show nothing of it rather than a password
        return "<unparsable connection string>"
    if params.get("password"):
        params["password"] = "***"
    return make_url(params)


def _connect(url: str, timeout: float = 10, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        url,
        autocommit=True,
        prepare_threshold=None,
        connect_timeout=max(2, round(timeout)),
        **kwargs,
    )


def _probe(url: str, timeout: float) -> str | None:
    """None when ``url`` accepts connections, else why not (without any password)."""
    try:
        with _connect(url, timeout) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()}"
    return None


# --------------------------------------------------------------------- throwaway


def find_pg_ctl() -> str:
    """The installed ``pg_ctl``: pg_config's bindir, newest Debian/RHEL layout, PATH."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True
        )
        candidates.append(Path(out.stdout.strip()) / "pg_ctl")

    def version(path: Path) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in path.parent.parent.name).split()
        return tuple(int(d) for d in digits)

    for pattern in ("/usr/lib/postgresql/*/bin/pg_ctl", "/usr/pgsql-*/bin/pg_ctl"):
        found = [Path(p) for p in glob.glob(pattern)]
        candidates.extend(sorted(found, key=version, reverse=True))
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(Path(which))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(
        "no PostgreSQL server binaries found (pg_ctl): install the server "
        "(Debian: apt-get install -y postgresql) or set LGSD_TEST_POSTGRES_URL"
    )


def _service_user() -> pwd.struct_passwd:
    """The unprivileged OS user that servers run as when we are root."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


_SHIM = """#!{python} -I
# pg_ctl for pytest-postgresql's executor, written by tests/pg_server.py: PostgreSQL
# refuses to run as root, so drop to {user} before running the real pg_ctl.
import os, sys
os.initgroups({user!r}, {gid})
os.setgid({gid})
os.setuid({uid})
os.environ.update(HOME={home!r}, USER={user!r}, LOGNAME={user!r})
os.chdir("/")
os.execv({pg_ctl!r}, [{pg_ctl!r}, *sys.argv[1:]])
"""


@contextlib.contextmanager
def throwaway_server(timeout: float = 60) -> Iterator[str]:
    """Start a private PostgreSQL server on a free 127.0.0.1 port; yield its maintenance URL."""
    with throwaway_executor(timeout) as (url, _executor):
        yield url


@contextlib.contextmanager
def throwaway_executor(timeout: float = 60) -> Iterator[tuple[str, Any]]:
    """`throwaway_server`, also yielding the executor: its ``stop()`` and ``start()`` stop
    the server and start it again on the same port (an outage).

    pytest-postgresql's ``PostgreSQLExecutor`` does the work (version check, ``pg_ctl
    initdb --auth=trust``, ``pg_ctl start -w``, ``pg_ctl stop -m f``).  Its
    ``postgresql_proc`` factory fixture is not used because it puts the data directory
    inside pytest's basetemp, which is root-only (0700) when pytest runs as root and is
    re-tightened by every pytest start, so a server running as ``postgres`` could not be
    stopped reliably.  Here the data directory is a temp dir owned by the server's user.
    """
    from port_for import get_port
    from pytest_postgresql.executors import PostgreSQLExecutor

    pg_ctl = find_pg_ctl()
    cleanup: list[Path] = []
    executor = None
    try:
        work = Path(tempfile.mkdtemp(prefix="lgsd-pg-"))
        cleanup.append(work)
        executable = pg_ctl
        if os.geteuid() == 0:
            user = _service_user()
            os.chown(work, user.pw_uid, user.pw_gid)
            # the shim runs as root: keep it where the service user cannot write
            shim_dir = Path(tempfile.mkdtemp(prefix="lgsd-pgctl-"))
            cleanup.append(shim_dir)
            shim = shim_dir / "pg_ctl"
            shim.write_text(
                _SHIM.format(
                    python=sys.executable,
                    user=user.pw_name,
                    uid=user.pw_uid,
                    gid=user.pw_gid,
                    home=user.pw_dir,
                    pg_ctl=pg_ctl,
                )
            )
            shim.chmod(0o700)
            executable = str(shim)
        errors = []
        for _attempt in range(3):
            port = get_port(None)
            assert port is not None
            executor = PostgreSQLExecutor(
                executable=executable,
                host="127.0.0.1",
                port=port,
                datadir=str(work / "data"),
                unixsocketdir=str(work),
                logfile=str(work / "postgresql.log"),
                startparams=f"-w -t {int(timeout)}",
                dbname="postgres",
                user="postgres",
                timeout=int(timeout),
                postgres_options=(
                    "-c listen_addresses=127.0.0.1 -c max_connections=200 "
                    "-c synchronous_commit=off -c full_page_writes=off"
                ),
            )
            try:
                executor.start()
                break
            except Exception as exc:  # port taken meanwhile, or a real failure
                log = work / "postgresql.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                errors.append(f"{type(exc).__name__}: {exc}\n{tail}")
                with contextlib.suppress(Exception):
                    executor.stop()
                with contextlib.suppress(Exception):
                    executor.clean_directory()
                executor = None
        if executor is None:
            raise RuntimeError(
                "could not start a throwaway PostgreSQL server:\n" + "\n".join(errors)
            )
        yield (
            make_url(
                {
                    "user": "postgres",
                    "host": "127.0.0.1",
                    "port": executor.port,
                    "dbname": "postgres",
                }
            ),
            executor,
        )
    finally:
        if executor is not None:
            try:
                executor.stop()
            finally:
                executor.clean_directory()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------- fixtures


def _fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Maintenance URL of the PostgreSQL server the session uses (see module docstring)."""
    mode = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
    if mode not in ("auto", "throwaway", "existing"):
        _fail(f"{ENV_MODE}={mode!r}: expected auto, throwaway or existing")
    tried: list[str] = []
    if mode != "throwaway":
        url = os.environ.get(ENV_URL, "").strip()
        if url:
            why = _probe(url, timeout=10)
            if why is None:
                yield url
                return
            _fail(f"PostgreSQL from {ENV_URL}={redact(url)} is unreachable: {why}")
        why = _probe(LOCAL_URL, timeout=2)
        if why is None:
            yield LOCAL_URL
            return
        tried.append(f"{LOCAL_URL}: {why}")
    if mode == "existing":
        _fail(f"no PostgreSQL server reachable ({ENV_MODE}=existing): " + "; ".join(tried))
    try:
        server = throwaway_server()
        url = server.__enter__()
    except Exception as exc:
        tried.append(f"throwaway server: {type(exc).__name__}: {exc}")
        _fail(
            "no PostgreSQL server for the tests. Tried:\n  - "
            + "\n  - ".join(tried)
            + f"\nSet {ENV_URL} to a server's maintenance database, run one on "
            "127.0.0.1:5432, or install the server binaries."
        )
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


def _create_database(server_url: str, name: str) -> None:
    ident = sql.Identifier(name)
    with _connect(server_url) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(ident)
            )
        except psycopg.errors.InvalidParameterValue:
            # server locale incompatible with UTF8: use the C locale
            conn.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                    "LC_COLLATE 'C' LC_CTYPE 'C'"
                ).format(ident)
            )


def _drop_database(server_url: str, name: str) -> None:
    ident = sql.Identifier(name)
    with _connect(server_url) as conn:
        if conn.info.server_version >= 130000:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh, empty database created for the session and dropped at its end."""
    name = f"lgsd_test_{secrets.token_hex(5)}"
    try:
        _create_database(pg_server_url, name)
    except psycopg.Error as exc:
        _fail(f"cannot create the test database on {redact(pg_server_url)}: {exc}")
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        _drop_database(pg_server_url, name)


_USER_SCHEMAS = """
    SELECT nspname FROM pg_namespace
    WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'
"""


def reset_database(url: str) -> None:
    """Drop every user schema (and so every table, view, function, type, sequence) of
    the database at ``url`` and recreate an empty ``public``."""

    def reset(conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '2s'")
            for (schema,) in conn.execute(_USER_SCHEMAS).fetchall():
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute("CREATE SCHEMA public")
            conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")

    with _connect(url) as conn:
        try:
            reset(conn)
        except psycopg.errors.LockNotAvailable:
            # a connection left over by an earlier test holds a lock: end it, try again
            _terminate_others(conn, None, 5.0)
            reset(conn)


@pytest.fixture
def pg_clean_url(pg_url: str) -> str:
    """``pg_url`` with every user schema dropped and an empty ``public`` recreated."""
    reset_database(pg_url)
    return pg_url


def _terminate_others(conn: psycopg.Connection, application_name: str | None, wait: float) -> int:
    terminate = (
        "pg_terminate_backend(pid, %(wait_ms)s)"
        if conn.info.server_version >= 140000
        else "pg_terminate_backend(pid)"
    )
    row = conn.execute(
        f"""
        SELECT count(*) FILTER (WHERE {terminate})
        FROM pg_stat_activity
        WHERE datname = current_database()
          AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
          AND (%(app)s::text IS NULL OR application_name = %(app)s::text)
        """,
        {"app": application_name, "wait_ms": int(wait * 1000)},
    ).fetchone()
    return int(row[0]) if row else 0


def terminate_backends(url: str, application_name: str | None = None, *, wait: float = 5.0) -> int:
    """Terminate the client backends connected to the database of ``url`` (all but the
    one used here; only those with ``application_name`` when given) and wait up to
    ``wait`` seconds for each to end. Returns how many were terminated.

    Through a PgBouncer URL it kills the pool's server connections too (same database)."""
    with _connect(url) as conn:
        return _terminate_others(conn, application_name, wait)


@pytest.fixture
def pg_terminate():
    """``terminate_backends(url, application_name=None)``: kill a database's backends."""
    return terminate_backends


# --------------------------------------------------------------------- pgbouncer


def _find_pgbouncer() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bouncer_value(value: str) -> str:
    if value and all(c.isalnum() or c in "._-/:@" for c in value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _bouncer_target(params: Mapping[str, str], dbname: str | None) -> str:
    keys = ("host", "port", "user", "password")
    target = {k: params[k] for k in keys if params.get(k)}
    target.setdefault("host", "127.0.0.1")
    target.setdefault("port", "5432")
    target.setdefault("user", pwd.getpwuid(os.geteuid()).pw_name)
    if dbname is not None:
        target["dbname"] = dbname
    return " ".join(f"{k}={_bouncer_value(str(v))}" for k, v in target.items())


@contextlib.contextmanager
def run_pgbouncer(
    server_url: str,
    *,
    pool_mode: str = "transaction",
    pool_size: int = PGBOUNCER_POOL_SIZE,
    timeout: float = 15,
) -> Iterator[str]:
    """Run PgBouncer on a free 127.0.0.1 port in front of ``server_url``'s server; yield
    the URL of ``server_url``'s database through it. Any other database name is proxied
    too, and the admin console is database ``pgbouncer`` (any user is admin)."""
    exe = _find_pgbouncer()
    if exe is None:
        raise FileNotFoundError(
            "pgbouncer is not installed: apt-get install -y pgbouncer (.ci/run does it)"
        )
    params = {k: str(v) for k, v in conninfo_to_dict(server_url).items()}
    dbname = params.get("dbname") or params.get("user") or "postgres"
    user = params.get("user") or pwd.getpwuid(os.geteuid()).pw_name
    workdir = Path(tempfile.mkdtemp(prefix="lgsd-pgbouncer-"))
    run_as: pwd.struct_passwd | None = _service_user() if os.geteuid() == 0 else None
    proc: subprocess.Popen | None = None
    try:
        if run_as is not None:
            os.chown(workdir, run_as.pw_uid, run_as.pw_gid)
        log_path = workdir / "pgbouncer.log"
        failures: list[str] = []
        for _attempt in range(3):
            port = _free_port()
            ini = workdir / "pgbouncer.ini"
            ini.write_text(
                "\n".join(
                    [
                        "[databases]",
                        f"{_bouncer_value(dbname)} = {_bouncer_target(params, dbname)}",
                        f"* = {_bouncer_target(params, None)}",
                        "",
                        "[pgbouncer]",
                        "listen_addr = 127.0.0.1",
                        f"listen_port = {port}",
                        "unix_socket_dir =",
                        "auth_type = any",
                        f"admin_users = {user}",
                        f"pool_mode = {pool_mode}",
                        "max_client_conn = 500",
                        f"default_pool_size = {pool_size}",
                        "min_pool_size = 0",
                        "reserve_pool_size = 0",
                        "ignore_startup_parameters = extra_float_digits,options",
                        "server_login_retry = 1",
                        "server_connect_timeout = 5",
                        "query_wait_timeout = 30",
                        "",
                    ]
                )
            )
            ini.chmod(0o600)  # may hold the server's password
            log = open(log_path, "ab")  # noqa: SIM115 - closed below
            try:
                kwargs: dict = {}
                if run_as is not None:
                    ini_owner = (run_as.pw_uid, run_as.pw_gid)
                    os.chown(ini, *ini_owner)
                    kwargs = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
                proc = subprocess.Popen(
                    [exe, str(ini)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    start_new_session=True,
                    **kwargs,
                )
            finally:
                log.close()
            url = make_url({"user": user, "host": "127.0.0.1", "port": port, "dbname": dbname})
            deadline = time.monotonic() + timeout
            why = "did not start"
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    why = f"exited with status {proc.returncode}"
                    break
                why = _probe(url, timeout=2) or ""
                if not why:
                    yield url
                    return
                time.sleep(0.05)
            tail = log_path.read_text(errors="replace")[-1500:]
            failures.append(f"pgbouncer on port {port} {why}\n{tail}")
            _stop(proc)
            proc = None
            if "Address already in use" not in tail:
                break
        raise RuntimeError("could not start pgbouncer:\n" + "\n".join(failures))
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (PgBouncer's immediate shutdown), then SIGKILL the process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def pgbouncer_url(pg_url: str) -> Iterator[str]:
    """``pg_url``'s database through PgBouncer in transaction pooling mode (pool of 4).

    Clients must not use server-side prepared statements: connect with
    ``prepare_threshold=None`` (psycopg)."""
    try:
        bouncer = run_pgbouncer(pg_url)
        url = bouncer.__enter__()
    except Exception as exc:
        _fail(f"cannot run PgBouncer: {exc}")
    try:
        yield url
    finally:
        bouncer.__exit__(None, None, None)


# ---------------------------------------------------- LGSD_REQUIRE_POSTGRES guard

_passed_with_postgres: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if "pg_url" in getattr(item, "fixturenames", ()):
        report.lgsd_uses_postgres = True  # plain attribute: survives pytest-xdist
    return report


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" and report.passed and getattr(report, "lgsd_uses_postgres", False):
        _passed_with_postgres.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get(ENV_REQUIRE, "").strip().lower() not in ("1", "true", "yes"):
        return
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly:
        return  # xdist workers: the controller decides
    if _passed_with_postgres:
        return
    message = f"{ENV_REQUIRE}=1 but no test using PostgreSQL (fixture pg_url) ran and passed"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_sep("=", message, red=True, bold=True)
    else:  # pragma: no cover
        print(message, file=sys.stderr)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
