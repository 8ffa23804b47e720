"""Many clients: real graph turns at several levels of concurrency, ours and the official
savers in the same run, on one SQLite file and one PostgreSQL database.

    python -m benchmarks.concurrency --levels 1,4,16,64 --seconds 20
    python -m benchmarks.concurrency --engines postgres --pgbouncer-url postgresql://...:6432/db

At each level, `level` clients run turns of the tool-calling agent of the soak
(`benchmarks/soak.py`) for `--seconds`, spread over up to `--processes` processes, each
process one saver shared by its clients' threads (the sync API, as a web app's worker
threads use it). Ours opens its pool by URL with `pool_max_size` = two per client of
the process, at most 20 (`pool_size`); the official PostgreSQL saver gets a
`psycopg_pool.ConnectionPool` of the same size, made as its docs say; the official SQLite
saver its one connection. Contenders alternate, each on a fresh database. Reported per
engine and level: turns/s, p50/p99 of a turn, errors
(must be 0) and, on PostgreSQL, the most server connections the contender held at once.
`--pgbouncer-url` names a database behind PgBouncer in transaction mode (the official
saver then runs with `prepare_threshold=None`, ours with `pgbouncer=true`); its
databases are not created or dropped, only emptied of both schemas before each run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from .contenders import DEFAULT_PG_URL, official_missing, saver_class
from .long_chat_writes import _database
from .soak import Client, Outcome, in_threads, p50_p99

#: Most connections one process's pool may open: with `--processes 4`, 80 in all, below
#: PostgreSQL's default `max_connections` (100, 3 of them reserved).
POOL_CAP = 20


def pool_size(clients: int) -> int:
    """Connections for `clients` threads running graphs in one process: two each (LangGraph
    writes a step's checkpoint in the background while the next step runs), at most
    `POOL_CAP`."""
    return min(2 * max(clients, 1), POOL_CAP)


@contextmanager
def open_saver(impl: str, url: str, clients: int, bouncer: bool) -> Iterator[Any]:
    """A sync saver of `impl` on `url` for `clients` threads of one process."""
    if impl == "ours":
        from langgraph_store_dual import from_url

        options: dict[str, Any] = {}
        if url.startswith("postgres"):
            options = {"pool_max_size": pool_size(clients), "pgbouncer": bouncer}
        with from_url(url, **options) as saver:
            yield saver
        return
    if url.startswith("sqlite:"):
        cls = saver_class("official", "sqlite", "sync")
        with cls.from_conn_string(urlsplit(url).path[1:]) as saver:
            yield saver
        return
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": None if bouncer else 0}
    kwargs["row_factory"] = dict_row
    with ConnectionPool(url, min_size=1, max_size=pool_size(clients), kwargs=kwargs) as pool:
        yield saver_class("official", "postgres", "sync")(pool)


def time_latest_reads(saver: Any, into: list[float]) -> None:
    """Time (ms, into `into`) the saver's reads of a thread's latest checkpoint, the read
    each turn starts with (`get_tuple` without a checkpoint id)."""
    get = saver.get_tuple

    def get_tuple(config: Any) -> Any:
        if config["configurable"].get("checkpoint_id"):
            return get(config)
        started = time.perf_counter()
        try:
            return get(config)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    saver.get_tuple = get_tuple


def worker(impl: str, url: str, index: int, clients: int, seconds: float, bouncer: bool) -> Outcome:
    """One process: `clients` threads running turns on one saver until the deadline."""
    with open_saver(impl, url, clients, bouncer) as saver:
        gets: list[float] = []
        time_latest_reads(saver, gets)
        runners = [Client(saver, f"p{index}-k{k}", 20) for k in range(clients)]
        start = time.monotonic()
        outcome = in_threads(runners, start + seconds)
        outcome.seconds = time.monotonic() - start
        outcome.gets = gets
    return outcome


class ConnectionWatch:
    """The most client connections a PostgreSQL database had at once, polled."""

    def __init__(self, url: str) -> None:
        self.url, self.peak, self._stop = url, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        dbname = urlsplit(self.url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                (n,) = conn.execute(
                    "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = %s", (dbname,)
                ).fetchone()
                self.peak = max(self.peak, n)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def prepare(impl: str, url: str, bouncer: bool) -> None:
    """Create the schema once, before the workers race to it."""
    if bouncer:
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    with open_saver(impl, url, 1, bouncer) as saver:
        saver.setup()


def run_level(
    impl: str, url: str, level: int, processes: int, seconds: float, bouncer: bool
) -> dict:
    prepare(impl, url, bouncer)
    n = min(level, processes)
    shares = [level // n + (i < level % n) for i in range(n)]
    context = multiprocessing.get_context("spawn")
    outcome = Outcome()
    watch = ConnectionWatch(url) if url.startswith("postgres") and not bouncer else None
    with ProcessPoolExecutor(n, mp_context=context) as pool, watch or _nothing():
        futures = [
            pool.submit(worker, impl, url, i, share, seconds, bouncer)
            for i, share in enumerate(shares)
        ]
        for future in futures:
            outcome.add(future.result())
    lat = outcome.latencies
    p50, p99 = p50_p99(lat)
    get_p50, get_p99 = p50_p99(outcome.gets)
    return {
        "turns": len(lat),
        "turns_per_s": len(lat) / outcome.seconds if outcome.seconds else 0.0,
        "p50_ms": p50,
        "p99_ms": p99,
        "get_latest_p50_ms": get_p50,
        "get_latest_p99_ms": get_p99,
        "errors": outcome.errors[:5],
        "error_count": len(outcome.errors),
        "connections": watch.peak if watch else None,
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    parser.add_argument("--pgbouncer-url", help="a database behind PgBouncer (transaction mode)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--chart", type=Path, help="draw turns/s and p99 per level (PNG) here")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    routes = [(e, False) for e in args.engines.split(",")]
    if args.pgbouncer_url:
        routes.append(("postgres", True))
    results, failed = [], False
    print(
        "| engine | clients | ours turns/s | official turns/s | ratio | ours p50/p99 ms "
        "| official p50/p99 ms | get latest p50/p99 ms, ours | official | errors "
        "| connections (ours/official) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for engine, bouncer in routes:
        if why := official_missing(engine):
            parser.error(f"the official {engine} saver is needed: {why}")
        for level in levels:
            row: dict[str, Any] = {"engine": engine, "pgbouncer": bouncer, "clients": level}
            for impl in ("official", "ours") if level % 2 else ("ours", "official"):
                if bouncer:
                    row[impl] = run_level(
                        impl, args.pgbouncer_url, level, args.processes, args.seconds, True
                    )
                    continue
                with _database(engine, args.pg_url) as url:
                    row[impl] = run_level(impl, url, level, args.processes, args.seconds, False)
            ours, official = row["ours"], row["official"]
            errors = ours["error_count"] + official["error_count"]
            failed |= bool(errors)
            results.append(row)
            ratio = ours["turns_per_s"] / official["turns_per_s"] if official["turns_per_s"] else 0
            print(
                f"| {engine}{' via PgBouncer' if bouncer else ''} | {level} "
                f"| {ours['turns_per_s']:.1f} | {official['turns_per_s']:.1f} | {ratio:.2f} "
                f"| {ours['p50_ms']:.0f}/{ours['p99_ms']:.0f} "
                f"| {official['p50_ms']:.0f}/{official['p99_ms']:.0f} "
                f"| {ours['get_latest_p50_ms']:.2f}/{ours['get_latest_p99_ms']:.2f} "
                f"| {official['get_latest_p50_ms']:.2f}/{official['get_latest_p99_ms']:.2f} "
                f"| {errors} "
                f"| {ours['connections'] or '-'}/{official['connections'] or '-'} |",
                flush=True,
            )
            for line in ours["errors"] + official["errors"]:
                print(f"  {line}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    if args.chart:
        chart(results, args.chart)
    return 1 if failed else 0


def chart(results: list[dict[str, Any]], path: Path) -> None:
    """Turns/s and p99 of a turn against clients (log x), per route and contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = sorted({(r["engine"], r["pgbouncer"]) for r in results})
    fig, axes = plt.subplots(2, len(routes), figsize=(4.5 * len(routes), 7), squeeze=False)
    for col, (engine, bouncer) in enumerate(routes):
        rows = [r for r in results if (r["engine"], r["pgbouncer"]) == (engine, bouncer)]
        levels = [r["clients"] for r in rows]
        for impl, style in (("ours", "o-"), ("official", "s--")):
            axes[0][col].plot(levels, [r[impl]["turns_per_s"] for r in rows], style, label=impl)
            axes[1][col].plot(levels, [r[impl]["p99_ms"] for r in rows], style, label=impl)
        axes[0][col].set_title(f"{engine}{' via PgBouncer' if bouncer else ''}")
        axes[0][col].set_ylabel("graph turns/s")
        axes[1][col].set_ylabel("p99 of a turn (ms)")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
