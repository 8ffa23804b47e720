"""Cost of a put, and of a get of the latest checkpoint, as one long chat grows.

    python -m benchmarks.long_chat_writes                       # 300 turns, both engines
    python -m benchmarks.long_chat_writes --package-dir ../old  # another version of ours

Records the agent of `examples/agent.py` for `--turns` turns, replays it through our
savers' `put`/`put_writes` on a fresh SQLite file and a fresh PostgreSQL database (durable
settings: each saver's defaults), timing every `put`; then times `--gets` warm reads of the
latest checkpoint. `--package-dir` imports `langgraph_store_dual` from another checkout
(e.g. one from before a storage change) so both can be measured alike. Prints p50 in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from . import workload
from .contenders import DEFAULT_PG_URL


@contextmanager
def _database(engine: str, admin_url: str) -> Iterator[str]:
    """The URL of a fresh database of `engine`, dropped afterwards."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'long_chat.db'}"
        return
    name = f"lgsd_bench_long_chat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class _TimedPuts:
    """A saver whose `put`s are timed (ms, in `times`); everything else passes through."""

    def __init__(self, saver: Any) -> None:
        self.saver, self.times = saver, []

    def put(self, *args: Any) -> Any:
        t0 = time.perf_counter()
        stored = self.saver.put(*args)
        self.times.append((time.perf_counter() - t0) * 1000)
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self.saver, name)


def measure(lgsd: Any, url: str, steps: list[workload.Step], gets: int) -> dict[str, float]:
    """p50 of every put, of the last fifth of the puts, and of warm gets of the latest."""
    thread = workload.thread_id(0, "longchat")
    with lgsd.from_url(url) as saver:
        saver.setup()
        timed = _TimedPuts(saver)
        for _ in workload.replay(timed, steps, thread, 0):
            pass
        latest = {"configurable": {"thread_id": thread}}
        saver.get_tuple(latest)  # warm: the saver keeps what it read
        gets_ms = []
        for _ in range(gets):
            t0 = time.perf_counter()
            saver.get_tuple(latest)
            gets_ms.append((time.perf_counter() - t0) * 1000)
    puts = timed.times
    return {
        "put": statistics.median(puts),
        "put, last fifth": statistics.median(puts[-len(puts) // 5 :]),
        "get latest": statistics.median(gets_ms),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_chat_writes")
    parser.add_argument("--turns", type=int, default=workload.LONG_CHAT_TURNS)
    parser.add_argument("--gets", type=int, default=40)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    parser.add_argument("--package-dir", help="import langgraph_store_dual from here")
    args = parser.parse_args(argv)
    if args.package_dir:
        sys.path.insert(0, str(Path(args.package_dir).resolve()))
    import langgraph_store_dual as lgsd

    steps = workload.record(args.turns)
    print(f"{lgsd.__file__}: {len(steps)} checkpoints, p50 in ms\n")
    print("| engine | put | put, last fifth | get latest |\n|---|---:|---:|---:|")
    for engine in args.engines.split(","):
        with _database(engine, args.pg_url) as url:
            got = measure(lgsd, url, steps, args.gets)
        print(f"| {engine} | " + " | ".join(f"{v:.2f}" for v in got.values()) + " |")


if __name__ == "__main__":
    main()
