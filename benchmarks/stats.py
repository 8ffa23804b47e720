"""Latency of `threads.stats` on PostgreSQL, with and without planner statistics.

    python -m benchmarks.stats                       # 2,000 threads of ~50 checkpoints
    python -m benchmarks.stats --package-dir ../old  # another version of ours

Writes `--threads` threads of the recorded agent chat (~50 checkpoints each) and one
thread of the 300-turn long chat (~1,500 checkpoints) through the core operations of
`put`/`put_writes` into a fresh database on the server of `--pg-url`, its tables kept from
autovacuum. Then times `threads.stats` on savers opened from its URL, sync and async (the
median of `--samples` calls, one each on that many short threads, and as many on the long
thread, after a warm-up call): first without planner statistics (as before a table's first
ANALYZE), then after ANALYZE. Prints a markdown table in ms and the server's `jit`
setting; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from . import workload
from .contenders import DEFAULT_PG_URL, next_version, with_dbname
from .transfer import ours_source, print_table, thread_ops

TABLES = ("threads", "checkpoints", "checkpoint_values", "checkpoint_writes")
#: The long thread's number (short threads are numbered from 0).
LONG = 10**6


@contextmanager
def _database(admin_url: str) -> Iterator[str]:
    """The URL of a fresh database, dropped afterwards."""
    name = f"lgsd_bench_stats_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load(lgsd: Any, ops: Any, url: str, threads: int) -> None:
    with lgsd.from_url(url) as saver:
        saver.setup()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    ours_source(lgsd, ops, url, threads)
    steps = workload.record(workload.LONG_CHAT_TURNS, next_version=next_version("ours", "sqlite"))
    with lgsd.from_url(url) as saver:

        def long() -> Any:
            for op in thread_ops(ops, saver, steps, LONG):
                yield from op

        saver.run_op(long(), write=True)


def _median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f}"


def _sync(lgsd: Any, url: str, ids: list[str]) -> list[float]:
    times = []
    with lgsd.from_url(url) as saver:
        saver.threads.stats(ids[0])
        for thread_id in ids:
            started = time.perf_counter()
            saver.threads.stats(thread_id)
            times.append(time.perf_counter() - started)
    return times


async def _async(lgsd: Any, url: str, ids: list[str]) -> list[float]:
    times = []
    async with lgsd.from_url(url) as saver:
        await saver.threads.stats(ids[0])
        for thread_id in ids:
            started = time.perf_counter()
            await saver.threads.stats(thread_id)
            times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stats")
    parser.add_argument("--threads", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    parser.add_argument("--package-dir", help="import langgraph_store_dual from here")
    args = parser.parse_args(argv)
    if args.package_dir:
        sys.path.insert(0, str(Path(args.package_dir).resolve()))
    import langgraph_store_dual as lgsd
    from langgraph_store_dual.core import ops

    samples = min(args.samples, args.threads)
    threads = {
        f"short (~{len(workload.record(workload.THREAD_TURNS))} checkpoints)": [
            workload.thread_id(n) for n in range(samples)
        ],
        "long (~1,500 checkpoints)": [workload.thread_id(LONG)] * samples,
    }
    rows = []
    with _database(args.pg_url) as url:
        started = time.perf_counter()
        _load(lgsd, ops, url, args.threads)
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute("SELECT count(*), current_setting('jit') FROM checkpoints")
            checkpoints, jit = found.fetchall()[0]
        seconds = time.perf_counter() - started
        print(f"{lgsd.__file__}: {checkpoints} checkpoints in {seconds:.0f} s; jit = {jit}\n")
        for planner in ("none", "after ANALYZE"):
            if planner != "none":
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("ANALYZE")
            for name, ids in threads.items():
                sync = _sync(lgsd, url, ids)
                aio = asyncio.run(_async(lgsd, url, ids))
                rows.append([planner, name, _median_ms(sync), _median_ms(aio)])
    print_table("| planner statistics | thread | sync ms | async ms |", "|---|---|---:|---:|", rows)


if __name__ == "__main__":
    main()
