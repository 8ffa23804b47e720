"""Throughput of `migrate` and `import_official`, in checkpoints per second.

    python -m benchmarks.transfer --checkpoints 100000 --pg-url postgresql://...
    python -m benchmarks.transfer --package-dir ../old    # another version of ours

Sources, each of about `--checkpoints` checkpoints in threads of the recorded agent chat
(`workload.record`: a growing messages list, tool calls, ~50 checkpoints a thread):

- ours on SQLite, written through the core operations of `put`/`put_writes`, a few
  threads per transaction;
- the official SQLite and PostgreSQL savers' databases: one thread written through the
  official saver's `put`/`put_writes`, then copied in SQL under new thread ids (every
  row as the official saver wrote it; only `thread_id` differs).

Then, each into a fresh target: `migrate` SQLite -> PostgreSQL and that PostgreSQL ->
SQLite, and `import_official` from both official engines into ours on each engine. Prints
a markdown table: seconds (verification included), checkpoints/s, `report.ok` and the
checkpoint counts of source and target. PostgreSQL databases are created on the server of
`--pg-url` and dropped at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import psycopg

from . import workload
from .contenders import DEFAULT_PG_URL, next_version, saver_class, with_dbname

#: Checkpoints written per transaction while generating our source.
CHUNK = 200


@contextmanager
def _databases(admin_url: str) -> Iterator[Callable[[str, str], str]]:
    """`fresh(engine, name)`: the URL of a new empty database; all dropped at the end."""
    made: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(engine: str, name: str) -> str:
            if engine == "sqlite":
                return f"sqlite:///{Path(tmp) / name}.db"
            dbname = f"lgsd_bench_transfer_{name}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            made.append(dbname)
            return with_dbname(admin_url, dbname)

        try:
            yield fresh
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                for dbname in made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# -- sources ---------------------------------------------------------------------------


def thread_ops(ops: Any, saver: Any, steps: list[workload.Step], number: int) -> Iterator[Any]:
    """The core operations of thread `number`'s puts and writes, as the saver builds them."""
    d, codec = saver.dialect, saver.codec
    thread, parent = workload.thread_id(number), None
    for index, step in enumerate(steps):
        checkpoint = workload.renumbered(step, number, index)
        at = {"thread_id": thread, "checkpoint_ns": ""}
        config = {"configurable": {**at, **({"checkpoint_id": parent} if parent else {})}}
        yield ops.put(d, codec, config, checkpoint, step.metadata, step.new_versions)
        own = {"configurable": {**at, "checkpoint_id": checkpoint["id"]}}
        for task_id, writes, task_path in step.writes:
            yield ops.put_writes(d, codec, own, writes, task_id, task_path)
        parent = checkpoint["id"]


def ours_source(lgsd: Any, ops: Any, url: str, threads: int) -> None:
    """Ours at `url` with `threads` threads of the recorded chat, ~`CHUNK` checkpoints per
    transaction."""
    steps = workload.record(workload.THREAD_TURNS, next_version=next_version("ours", "sqlite"))
    per = max(1, CHUNK // len(steps))
    with lgsd.from_url(url) as saver:
        saver.setup()
        for first in range(0, threads, per):
            numbers = range(first, min(first + per, threads))

            def chunk(numbers: range = numbers) -> Any:
                for n in numbers:
                    for op in thread_ops(ops, saver, steps, n):
                        yield from op

            saver.run_op(chunk(), write=True)


def official_source(engine: str, url: str, threads: int) -> None:
    """The official saver's database at `url`: thread 0 written by the saver, copied in
    SQL as threads 1 .. `threads` - 1."""
    steps = workload.record(workload.THREAD_TURNS, next_version=next_version("official", engine))
    cls: Any = saver_class("official", engine, "sync")
    target = url.removeprefix("sqlite:///") if engine == "sqlite" else url
    with cls.from_conn_string(target) as saver:
        saver.setup()
        for _ in workload.replay(saver, steps, workload.thread_id(0), 0):
            pass
    ids = orjson.dumps([workload.thread_id(n) for n in range(1, threads)]).decode()
    if engine == "sqlite":
        import sqlite3

        with sqlite3.connect(target) as conn:
            tables = [
                t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                cols = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
                if "thread_id" in cols:
                    conn.execute(
                        _copy_sql(table, cols, "n.value", "json_each(?) n", "?"),
                        (ids, workload.thread_id(0)),
                    )
        return
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            """SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position)
            FROM information_schema.columns WHERE table_schema = current_schema()
            GROUP BY table_name"""
        ).fetchall()
        for table, cols in found:
            if "thread_id" in cols:
                sql = _copy_sql(table, cols, "n", "unnest(%s::text[]) n", "%s")
                conn.execute(sql, (orjson.loads(ids), workload.thread_id(0)))


def _copy_sql(table: str, cols: list[str], new_id: str, ids: str, param: str) -> str:
    picked = ", ".join(new_id if c == "thread_id" else f"t.{c}" for c in cols)
    return f"""INSERT INTO {table} ({", ".join(cols)}) SELECT {picked}
        FROM {table} t, {ids} WHERE t.thread_id = {param}"""


# -- runs ------------------------------------------------------------------------------


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(header: str, rule: str, rows: list[list[str]]) -> None:
    """A Markdown table: `header` and `rule` lines, then a line per row of cells."""
    print(header)
    print(rule)
    for row in rows:
        print(markdown_row(row))


def timed(name: str, run: Callable[[], Any], rows: list[list[str]]) -> Any:
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    count = {c.kind: c for c in report.counts}.get("checkpoints")
    copied = report.copied.get("checkpoints", 0)
    counts = f"{count.source} / {count.target}" if count else "-"
    # hundredths: a small run's transfer takes well under a tenth of a second
    row = [name, f"{copied}", f"{seconds:.2f}", f"{copied / seconds:.0f}", str(report.ok), counts]
    rows.append(row)
    print(markdown_row(row), file=sys.stderr, flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer")
    parser.add_argument("--checkpoints", type=int, default=100_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    parser.add_argument("--package-dir", help="import langgraph_store_dual from here")
    args = parser.parse_args(argv)
    if args.package_dir:
        sys.path.insert(0, str(Path(args.package_dir).resolve()))
    import langgraph_store_dual as lgsd
    from langgraph_store_dual.core import ops
    from langgraph_store_dual.transfer import import_official, migrate

    per_thread = len(workload.record(workload.THREAD_TURNS))
    threads = max(1, math.ceil(args.checkpoints / per_thread))
    rows: list[list[str]] = []
    with ExitStack() as stack:
        fresh = stack.enter_context(_databases(args.pg_url))
        started = time.perf_counter()
        ours = fresh("sqlite", "ours")
        ours_source(lgsd, ops, ours, threads)
        official = {e: fresh(e, f"official_{e}") for e in ("sqlite", "postgres")}
        for engine, url in official.items():
            official_source(engine, url, threads)
        print(
            f"{lgsd.__file__}: {threads} threads of {per_thread} checkpoints, sources made in "
            f"{time.perf_counter() - started:.0f} s\n"
        )
        pg = fresh("postgres", "migrated")
        timed("migrate SQLite -> PostgreSQL", lambda: migrate(ours, pg), rows)
        back = fresh("sqlite", "back")
        timed("migrate PostgreSQL -> SQLite", lambda: migrate(pg, back), rows)
        for src in ("sqlite", "postgres"):
            for dst in ("postgres", "sqlite"):
                target = fresh(dst, f"from_{src}")
                name = f"import_official {src} -> {dst}"
                timed(name, partial(import_official, official[src], target), rows)
    print_table(
        "| transfer | checkpoints | seconds | checkpoints/s | ok | checkpoints source / target |",
        "|---|---:|---:|---:|---|---|",
        rows,
    )


if __name__ == "__main__":
    main()
