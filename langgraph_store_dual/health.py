"""Health checks: `saver.ping()` / `await saver.aping()`, for a `/health` endpoint.

One trivial read (the server's version and our schema version) through the saver's pool
or connection, bounded by `timeout`: the wait for a pooled connection (or for the saver's
single connection, while another call uses it), the statements (PostgreSQL's
`statement_timeout`, SQLite's busy timeout) and, on the async savers, the whole call.
A database that cannot answer is a report with `ok=False` and the reason, never an
exception and never a password. The check reads only: it creates no schema, takes no
write lock and records no telemetry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from . import registry
from .core.dialect import Dialect
from .core.stmt import Op, Stmt

#: Seconds a ping waits by default: well under a load balancer's probe interval.
DEFAULT_TIMEOUT = 2.0

#: Seconds the async ping's backstop (a `wait_for` around it all) gives its own bounded
#: steps beyond `timeout`, so that they report what they waited for.
BACKSTOP_GRACE = 0.1

#: `db.system.name` of each dialect (OpenTelemetry's names; ours are shorter).
ENGINES = {"sqlite": "sqlite", "postgres": "postgresql"}

#: The engine's version, and whether our schema-version table exists: one statement.
_PROBES = {
    "sqlite": "SELECT sqlite_version(), EXISTS (SELECT 1 FROM sqlite_master"
    " WHERE type = 'table' AND name = 'schema_version')",
    "postgres": "SELECT current_setting('server_version'),"
    " to_regclass('schema_version') IS NOT NULL",
}

#: What `Health.pool` reports of psycopg_pool's `get_stats()` (counters absent there are 0).
POOL_STATS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_errors",
    "connections_errors",
    "connections_lost",
)


@dataclass(frozen=True)
class Health:
    """What a ping found. `ok`: the database answered within the timeout and the saver
    can use its schema (current, or absent/older with `auto_setup`, which migrates it on
    first use). `as_dict()` is ready for a JSON response."""

    ok: bool
    engine: str  # "sqlite" or "postgresql"
    latency_ms: float  # the whole call, pool wait included
    server_version: str | None  # SQLite library or PostgreSQL server version
    schema_version: int | None  # stored schema version (None: no schema yet, or no answer)
    schema_expected: int  # the version this package writes
    schema_current: bool  # schema_version == schema_expected
    pool: dict[str, int] | None  # psycopg_pool statistics (POOL_STATS); None without a pool
    error: str | None  # why not ok: the error's type and message, passwords masked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the probe, engine-independent ----------------------------------------------------------


#: What the probe finds: the engine's version and the stored schema version.
Found = tuple[str, int | None]


def probe(d: Dialect) -> Op[Found]:
    """The engine's version and the stored schema version (None without our schema)."""
    ((version, has_schema),) = yield Stmt(_PROBES[d.name])
    if not has_schema:
        return str(version), None
    stored = (yield Stmt(d.select_version))[0][0]
    return str(version), None if stored is None else int(stored)


class Ping:
    """One ping: the deadline, and the report from what the probe found or raised."""

    def __init__(self, saver: Any, timeout: float) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            from .errors import ConfigError

            raise ConfigError(f"ping timeout must be a positive number of seconds, got {timeout!r}")
        self.saver, self.timeout = saver, float(timeout)
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout

    def left(self) -> float:
        """Seconds left; a `TimeoutError` when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.timed_out())
        return left

    def timed_out(self) -> str:
        return f"no answer within {self.timeout:g} s"

    def busy(self) -> TimeoutError:
        return TimeoutError(
            f"the saver's connection stayed in use by other calls for {self.timeout:g} s"
        )

    def report(self, found: tuple[str, int | None] | None, exc: BaseException | None) -> Health:
        d: Dialect = self.saver.dialect
        expected = len(d.migrations)
        server, version = found if found is not None else (None, None)
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and not str(exc):
            exc = TimeoutError(self.timed_out())  # wait_for's, which says nothing
        error = (
            _describe(exc, self.saver)
            if exc is not None
            else _schema_problem(self.saver, version, expected)
        )
        return Health(
            ok=error is None,
            engine=ENGINES.get(d.name, d.name),
            latency_ms=round((time.monotonic() - self.started) * 1000, 3),
            server_version=server,
            schema_version=version,
            schema_expected=expected,
            schema_current=version == expected,
            pool=pool_stats(self.saver),
            error=error,
        )


def _schema_problem(saver: Any, version: int | None, expected: int) -> str | None:
    if version is not None and version > expected:
        return (
            f"the database schema is at version {version}, newer than version {expected} "
            "that this langgraph-store-dual understands: upgrade the package"
        )
    if (version or 0) < expected and not saver.auto_setup:
        return (
            f"the database schema is at version {version or 0}, this package needs "
            f"{expected}: call setup() (auto_setup is off)"
        )
    return None


def _describe(exc: BaseException, saver: Any) -> str:
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    secret = _password(saver)
    return text.replace(secret, "***") if secret else text


def _password(saver: Any) -> str | None:
    """The password the saver connects with, to mask in messages (None: none known)."""
    try:
        password: str | None = _engine(saver).password(saver)
        return password
    except Exception:  # a closed saver's stand-in, an unparsable conninfo: nothing to mask
        return None


def pool_of(saver: Any) -> Any:
    """The saver's psycopg_pool pool, or None (SQLite, a single connection, closed)."""
    conn = saver.__dict__.get("conn")
    return conn if hasattr(type(conn), "get_stats") else None


def pool_stats(saver: Any) -> dict[str, int] | None:
    """`POOL_STATS` of the saver's pool, or None without one."""
    pool = pool_of(saver)
    if pool is None:
        return None
    stats = pool.get_stats()
    return {key: int(stats.get(key, 0)) for key in POOL_STATS}


# -- the engines -----------------------------------------------------------------------------


def _engine(saver: Any) -> Any:
    """The engine's `health` module: `probe(saver, ping)`, `aprobe(saver, ping)` and
    `password(saver)`."""
    return registry.engine_named(saver.dialect.name).tool("health")


# -- entry points ----------------------------------------------------------------------------


def _is_async(saver: Any) -> bool:
    """Whether `saver` is an async saver (whose blocking calls hop to its loop)."""
    return hasattr(saver, "_blocking")


def ping(saver: Any, timeout: float = DEFAULT_TIMEOUT) -> Health:
    """Check `saver`'s database within `timeout` seconds (see the module). An async saver
    answers from other threads, as its other blocking methods do."""
    if _is_async(saver):
        return saver._blocking(aping(saver, timeout))  # type: ignore[no-any-return]
    check = Ping(saver, timeout)
    try:
        found = _engine(saver).probe(saver, check)
    except Exception as exc:  # reported: a health check answers, it does not raise
        return check.report(None, exc)
    return check.report(found, None)


async def aping(saver: Any, timeout: float = DEFAULT_TIMEOUT) -> Health:
    """`ping` for asyncio: the whole call ends within `timeout` (plus `BACKSTOP_GRACE`,
    and the time psycopg takes to cancel a statement the server is still running)."""
    if not _is_async(saver):
        return await asyncio.to_thread(ping, saver, timeout)
    check = Ping(saver, timeout)
    try:
        probing = _engine(saver).aprobe(saver, check)
        found = await asyncio.wait_for(probing, timeout + BACKSTOP_GRACE)
    except Exception as exc:  # reported: a health check answers, it does not raise
        return check.report(None, exc)
    return check.report(found, None)
