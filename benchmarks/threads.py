"""Latency of `threads.list` for one user with many threads, on each engine.

    python -m benchmarks.threads                    # 100,000 threads, SQLite and PostgreSQL
    python -m benchmarks.threads --threads 10000 --samples 50 --engines sqlite

Seeds the `threads` table directly with batch INSERTs (the user under test, plus 10% more
rows for other users), then times `ThreadManager.list` and `AsyncThreadManager.list`
(limit 20): the first page, a page 50,000 threads deep, the last page, and a first page
filtered by status and a metadata value most threads have, and one only one thread
has. Cursors come from paging with the API itself. Prints a
markdown table (p50 / p95 / p99 in ms) and the PostgreSQL plan of a deep page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg

from langgraph_store_dual import AsyncThreadManager, ThreadManager

USER = "ana@example.com"
PAGE = 20
DB_NAME = "lgsd_bench_threads"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def rows(n: int) -> Iterator[tuple[Any, ...]]:
    """(thread_id, user_id, title, metadata, stamp): `n` threads of USER, n/10 of others,
    one second apart, newest first."""
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i in range(n + n // 10):
        user = USER if i % 11 else f"user{i % 7}@example.com"
        meta = {"team": "netops" if i % 3 == 0 else "support", "n": i}
        stamp = start - timedelta(seconds=i)
        yield f"t{i:08d}", user, f"Thread {i}", orjson.dumps(meta).decode(), stamp


def _text(stamp: datetime) -> str:
    """A time as SQLite stores it (ISO, milliseconds, Z)."""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@contextmanager
def sqlite_database(n: int) -> Iterator[str]:
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "threads.db"
        with ThreadManager(f"sqlite:///{path}") as threads:
            threads.count()  # creates the schema
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO threads (thread_id, user_id, title, metadata, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(tid, user, title, meta, _text(s), _text(s)) for tid, user, title, meta, s in rows(n)],
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.close()
        yield f"sqlite:///{path}"


@contextmanager
def postgres_database(admin_url: str, n: int, keep: bool) -> Iterator[str]:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    url = urlsplit(admin_url)._replace(path=f"/{DB_NAME}").geturl()
    try:
        with ThreadManager(url) as threads:
            threads.count()  # creates the schema
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO threads (thread_id, user_id, title, metadata, created_at,"
                " updated_at) VALUES (%s, %s, %s, %s::jsonb, %s, %s)",
                [(tid, user, title, meta, s, s) for tid, user, title, meta, s in rows(n)],
            )
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE threads")
        yield url
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def cursor_at(threads: ThreadManager, depth: int) -> str | None:
    """The cursor `depth` threads into the user's list, found by paging with the API."""
    cursor, seen = None, 0
    while seen < depth:
        page = threads.list(user_id=USER, limit=min(1000, depth - seen), cursor=cursor)
        seen, cursor = seen + len(page.items), page.next_cursor
    return cursor


def summary(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"{q[49]:.2f} | {q[94]:.2f} | {q[98]:.2f}"


def time_sync(call: Callable[[], Any], samples: int) -> list[float]:
    call()  # warm up
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def time_async(url: str, cases: dict[str, dict[str, Any]], samples: int) -> dict[str, list]:
    out: dict[str, list[float]] = {}
    async with AsyncThreadManager(url) as threads:
        for name, kwargs in cases.items():
            await threads.list(**kwargs)
            out[name] = []
            for _ in range(samples):
                start = time.perf_counter()
                await threads.list(**kwargs)
                out[name].append((time.perf_counter() - start) * 1000)
    return out


def measure(engine: str, url: str, n: int, samples: int) -> tuple[list[str], list[str]]:
    """Table rows (sync then async per case) and notes (the PostgreSQL plan)."""
    with ThreadManager(url) as threads:
        depth = min(50_000, n // 2)
        found = {
            "first page": None,
            f"page at {depth:,}": cursor_at(threads, depth),
            "last page": cursor_at(threads, n - PAGE),
        }
        cases = {name: {"user_id": USER, "limit": PAGE, "cursor": c} for name, c in found.items()}
        common = {"user_id": USER, "limit": PAGE, "status": "active"}
        cases["first page, status + common metadata value"] = {
            **common,
            "metadata": {"team": "netops"},
        }
        rare = n - 1 if (n - 1) % 11 else n - 2  # an old thread of USER (see `rows`)
        cases["status + rare metadata value (1 thread)"] = {**common, "metadata": {"n": rare}}
        timed = {}
        for name, kwargs in cases.items():
            assert len(threads.list(**kwargs).items) == (1 if "rare" in name else PAGE)
            timed[name] = time_sync(lambda kwargs=kwargs: threads.list(**kwargs), samples)
    timed_async = asyncio.run(time_async(url, cases, samples))
    table = []
    for name in cases:
        table.append(f"| {engine} | sync | {name} | {summary(timed[name])} |")
        table.append(f"| {engine} | async | {name} | {summary(timed_async[name])} |")
    return table, [plan(url, found)] if engine == "postgresql" else []


def plan(url: str, found: dict[str, str | None]) -> str:
    from langgraph_store_dual.core.thread_model import decode_cursor
    from langgraph_store_dual.postgres.dialect import POSTGRES

    stamp, tid = decode_cursor(next(c for k, c in found.items() if k.startswith("page at")))
    where = POSTGRES.threads.where(USER, None, None)
    sql, params = POSTGRES.threads.page(where, (stamp, tid), PAGE + 1)
    with psycopg.connect(url) as conn:
        text = [r[0] for r in conn.execute("EXPLAIN ANALYZE " + sql, params).fetchall()]
    return "PostgreSQL plan of a deep page:\n    " + "\n    ".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=100_000, help="threads of the user")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per case")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="admin URL of a PostgreSQL server")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args(argv)
    print(
        f"threads.list, limit {PAGE}, one user with {args.threads:,} threads "
        f"({args.threads + args.threads // 10:,} rows), {args.samples} samples per case\n"
    )
    print("| engine | API | page | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    notes = []
    for engine in args.engines.split(","):
        started = time.perf_counter()
        if engine == "sqlite":
            database = sqlite_database(args.threads)
        elif engine == "postgresql":
            database = postgres_database(args.pg_url, args.threads, args.keep)
        else:
            parser.error(f"unknown engine {engine!r}")
        with database as url:
            seeded = time.perf_counter() - started
            table, more = measure(engine, url, args.threads, args.samples)
        print("\n".join(table), flush=True)
        notes += [f"{engine}: seeded in {seeded:.1f} s", *more]
    print("\n" + "\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
