"""Soak: many conversations at once, real graph turns, for a set time; nothing may fail.

    python -m benchmarks.soak --engine both --seconds 120 --clients 16

`--clients` conversations' clients run at once, spread over `--processes` worker
processes that share the database (SQLite: one file; PostgreSQL: a fresh database,
dropped afterwards). Even-numbered processes use the sync saver from threads
(`graph.invoke`), odd-numbered ones the async saver from tasks (`graph.ainvoke`). Each
client runs turns of the tool-calling agent of `examples/agent.py` (4 checkpoints and
4 messages a turn), starting a new conversation every `--turns-per-thread` turns.

At the end every conversation must hold exactly the messages of the turns it ran, and
`check_references()` must find nothing missing or orphaned. Prints turns/s and the
p50/p99 of a turn per engine; exits 1 on any error or problem.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .contenders import DEFAULT_PG_URL
from .long_chat_writes import _database
from .workload import build_agent, question

MESSAGES_PER_TURN = 4  # human, AI tool call, tool result, AI answer


@dataclass
class Outcome:
    """What a worker process did: turn latencies (ms), errors, turns per conversation,
    and for how long its clients ran (s)."""

    latencies: list[float] = field(default_factory=list)
    gets: list[float] = field(default_factory=list)  # reads of the latest checkpoint (ms)
    errors: list[str] = field(default_factory=list)
    turns: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, other: Outcome) -> None:
        self.latencies += other.latencies
        self.gets += other.gets
        self.errors += other.errors
        self.turns.update(other.turns)
        self.seconds = max(self.seconds, other.seconds)


def p50_p99(values: list[float]) -> tuple[float, float]:
    """The median and the nearest-rank p99 of `values` (NaN for none)."""
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Client:
    """One client: its own graph (the fake model is not shared), its conversations."""

    def __init__(self, saver: Any, name: str, turns_per_thread: int) -> None:
        self.graph = build_agent(turns=1_000_000).compile(checkpointer=saver)
        self.name, self.turns_per_thread = name, turns_per_thread
        self.outcome = Outcome()
        self.done = 0

    def next_turn(self) -> tuple[str, Any, dict]:
        thread_id = f"{self.name}-c{self.done // self.turns_per_thread}"
        config = {"configurable": {"thread_id": thread_id, "user_id": self.name}}
        return thread_id, {"messages": [("user", question(self.done))]}, config

    def record(self, thread_id: str, started: float, error: BaseException | None) -> None:
        if error is None:
            self.outcome.latencies.append((time.perf_counter() - started) * 1000)
            self.outcome.turns[thread_id] = self.outcome.turns.get(thread_id, 0) + 1
        else:
            self.outcome.errors.append(
                f"{self.name} {thread_id}: {''.join(traceback.format_exception(error))}"
            )
        self.done += 1

    def run(self, deadline: float) -> Outcome:
        while time.monotonic() < deadline:
            thread_id, value, config = self.next_turn()
            started, error = time.perf_counter(), None
            try:
                self.graph.invoke(value, config)
            except Exception as exc:  # counted and reported, never hidden
                error = exc
            self.record(thread_id, started, error)
        return self.outcome

    async def arun(self, deadline: float) -> Outcome:
        while time.monotonic() < deadline:
            thread_id, value, config = self.next_turn()
            started, error = time.perf_counter(), None
            try:
                await self.graph.ainvoke(value, config)
            except Exception as exc:
                error = exc
            self.record(thread_id, started, error)
        return self.outcome


def in_threads(clients: list[Client], deadline: float) -> Outcome:
    """Run each client in a thread of its own until `deadline`; what they did together."""
    outcome, results = Outcome(), []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.run(deadline))) for c in clients
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        outcome.add(result)
    return outcome


def worker(url: str, index: int, clients: int, seconds: float, turns_per_thread: int) -> Outcome:
    """One process: `clients` clients on one saver, sync (threads) or async (tasks)."""
    from langgraph_store_dual import from_url

    names = [f"p{index}-k{k}" for k in range(clients)]
    outcome = Outcome()
    start = time.monotonic()
    deadline = start + seconds
    if index % 2 == 0:
        with from_url(url) as saver:
            outcome = in_threads([Client(saver, n, turns_per_thread) for n in names], deadline)
        outcome.seconds = time.monotonic() - start
        return outcome

    async def main() -> None:
        async with from_url(url) as saver:
            runners = [Client(saver, n, turns_per_thread) for n in names]
            for result in await asyncio.gather(*(c.arun(deadline) for c in runners)):
                outcome.add(result)

    asyncio.run(main())
    outcome.seconds = time.monotonic() - start
    return outcome


def verify(url: str, outcome: Outcome) -> list[str]:
    """Every conversation holds the messages of its turns; every stored value is whole."""
    from langgraph_store_dual import from_url

    problems = []
    with from_url(url) as saver:
        for thread_id, turns in sorted(outcome.turns.items()):
            latest = saver.get_tuple({"configurable": {"thread_id": thread_id}})
            held = len(latest.checkpoint["channel_values"]["messages"]) if latest else 0
            if held != MESSAGES_PER_TURN * turns:
                problems.append(f"{thread_id}: {held} messages after {turns} turns")
            row = saver.threads.get(thread_id)
            if row is None or row.run_state != "idle":
                problems.append(f"{thread_id}: thread row {row}")
        problems += saver.check_references()
    return problems


def soak(url: str, seconds: float, clients: int, processes: int, turns_per_thread: int) -> dict:
    """Run the soak on the database at `url`; its figures and problems."""
    from langgraph_store_dual import from_url

    with from_url(url) as saver:
        saver.setup()  # once, before the workers race to it
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    outcome = Outcome()
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(worker, url, i, share, seconds, turns_per_thread)
            for i, share in enumerate(shares)
            if share
        ]
        for future in futures:
            outcome.add(future.result())
    elapsed = outcome.seconds  # the clients' run, not the processes' start-up
    problems = verify(url, outcome)
    lat = sorted(outcome.latencies)
    p50, p99 = p50_p99(lat)
    return {
        "turns": len(lat),
        "conversations": len(outcome.turns),
        "seconds": elapsed,
        "turns_per_s": len(lat) / elapsed if elapsed else 0.0,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": lat[-1] if lat else float("nan"),
        "errors": outcome.errors,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--turns-per-thread", type=int, default=20)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.processes < 1 or args.seconds <= 0:
        parser.error("--clients, --processes and --seconds must be positive")
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    failed = False
    for engine in engines:
        with _database(engine, args.pg_url) as url:
            r = soak(url, args.seconds, args.clients, args.processes, args.turns_per_thread)
        print(
            f"{engine}: {r['turns']} turns in {r['seconds']:.1f} s on {r['conversations']} "
            f"conversations ({args.clients} clients, {args.processes} processes): "
            f"{r['turns_per_s']:.1f} turns/s, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
            f"errors {len(r['errors'])}; problems {len(r['problems'])}",
            flush=True,
        )
        for line in (r["errors"] + r["problems"])[:10]:
            print(f"  {line}", file=sys.stderr)
        failed |= bool(r["errors"] or r["problems"] or not r["turns"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
