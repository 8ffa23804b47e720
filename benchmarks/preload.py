"""Preloading: fill each store with recorded threads through the savers' `put`/`put_writes`.

Work is spread over worker processes (2 cores: the savers' encoding is CPU-bound):
a SQLite file has one writer (its write lock serialises writers anyway), a PostgreSQL
database takes its threads in several chunks written concurrently. A store finished and
settled (`contenders.finalize`) is described by `<out>/cache/<store>.json`; a later run
finds it there and does not load it again.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import queue as queue_mod
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import contenders, workload
from .contenders import Store

_steps: dict[str, list[workload.Step]] = {}
_progress: Any = None


@dataclass(frozen=True)
class Target:
    """What a store must hold: `threads` copies of a recorded conversation."""

    store: Store
    kind: str  # "threads" or "longchat"
    threads: int
    steps_per_thread: int

    @property
    def checkpoints(self) -> int:
        return self.threads * self.steps_per_thread

    @property
    def namespace(self) -> str:
        return "t" if self.kind == "threads" else "longchat"

    @property
    def steps_key(self) -> str:
        return f"{self.store.impl}-{self.store.engine}-{self.kind}"


def fingerprint(target: Target, recording: dict[str, Any]) -> dict[str, Any]:
    return {
        "workload_version": workload.WORKLOAD_VERSION,
        "recording": recording,
        "kind": target.kind,
        "threads": target.threads,
        "steps_per_thread": target.steps_per_thread,
        "engine": target.store.engine,
        "impl": target.store.impl,
        "where": target.store.dbname or str(target.store.path),
    }


def meta_path(out: Path, store: Store) -> Path:
    return out / "cache" / f"{store.key}.json"


def cached(
    out: Path, target: Target, recording: dict[str, Any], steps: list[workload.Step]
) -> dict[str, Any] | None:
    """The cache entry of a complete, matching store, or None."""
    path = meta_path(out, target.store)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fingerprint(target, recording) or not meta.get("complete"):
        return None
    try:
        if not contenders.exists(target.store):
            return None
        # The last checkpoint written must be there.
        last = target.threads - 1
        conf = {
            "configurable": {
                "thread_id": workload.thread_id(last, target.namespace),
                "checkpoint_ns": "",
                "checkpoint_id": workload.replayed_id(steps, last, len(steps) - 1),
            }
        }
        with contenders.open_sync(target.store) as saver:
            if saver.get_tuple(conf) is None:
                return None
    except Exception:
        return None
    return meta


# -- worker side -------------------------------------------------------------------------


def _init(steps: dict[str, list[workload.Step]], progress: Any) -> None:
    global _progress
    _steps.update(steps)
    _progress = progress


def _load(target: Target, first: int, count: int) -> tuple[float, float]:
    steps = _steps[target.steps_key]
    start = time.time()
    with contenders.open_sync(target.store, preload=True) as saver:
        for number in range(first, first + count):
            thread = workload.thread_id(number, target.namespace)
            done = 0
            for _ in workload.replay(saver, steps, thread, number):
                done += 1
                if done % 50 == 0:
                    _progress.put((target.store.key, 50))
            if done % 50:
                _progress.put((target.store.key, done % 50))
    return start, time.time()


def _settle(target: Target) -> dict[str, Any]:
    start = time.perf_counter()
    contenders.finalize(target.store)
    measured = contenders.size(target.store)
    measured["settle_seconds"] = time.perf_counter() - start
    return measured


# -- scheduler ---------------------------------------------------------------------------


def _chunks(target: Target, jobs: int) -> list[tuple[int, int]]:
    if target.store.engine == "sqlite" or target.threads == 1:
        return [(0, target.threads)]
    n = min(target.threads, max(2, jobs * 2))
    size = math.ceil(target.threads / n)
    return [(i, min(size, target.threads - i)) for i in range(0, target.threads, size)]


def preload(
    out: Path,
    targets: list[Target],
    steps: dict[str, list[workload.Step]],
    recording: dict[str, Any],
    jobs: int,
    log: Any = print,
) -> dict[str, dict[str, Any]]:
    """Bring every target to its content; return the cache entry of each store by key."""
    results: dict[str, dict[str, Any]] = {}
    todo: list[Target] = []
    for target in targets:
        meta = cached(out, target, recording, steps[target.steps_key])
        if meta is not None:
            results[target.store.key] = {**meta, "cached": True}
        else:
            todo.append(target)
    if not todo:
        return results
    (out / "cache").mkdir(parents=True, exist_ok=True)
    for target in todo:
        meta_path(out, target.store).unlink(missing_ok=True)
        contenders.create(target.store)
    log(
        f"preloading {len(todo)} database(s) with {jobs} worker process(es): "
        + ", ".join(f"{t.store.key} ({t.checkpoints:,} checkpoints)" for t in todo)
    )
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Queue()
    needed = {t.steps_key for t in todo}
    tty = sys.stderr.isatty()
    bars = {
        t.store.key: tqdm(
            total=t.checkpoints,
            desc=f"{t.store.key:<28}",
            unit="ckpt",
            unit_scale=True,
            position=i,
            file=sys.stderr,
            mininterval=0.5 if tty else 30,
            dynamic_ncols=True,
            leave=True,
        )
        for i, t in enumerate(todo)
    }
    spans: dict[str, list[tuple[float, float]]] = {t.store.key: [] for t in todo}
    load_seconds: dict[str, float] = {}
    busy_seconds: dict[str, float] = {}
    remaining: dict[str, int] = {}
    by_future: dict[Future, tuple[str, Target]] = {}

    def drain(timeout: float) -> None:
        try:
            key, n = progress.get(timeout=timeout)
            bars[key].update(n)
            while True:
                key, n = progress.get_nowait()
                bars[key].update(n)
        except queue_mod.Empty:
            pass

    # Long single-writer SQLite jobs first, PostgreSQL chunks interleaved across stores.
    ordered: list[tuple[Target, int, int]] = []
    sqlite_targets = [t for t in todo if t.store.engine == "sqlite"]
    pg_chunks = [
        [(t, a, n) for a, n in _chunks(t, jobs)] for t in todo if t.store.engine != "sqlite"
    ]
    ordered += [(t, a, n) for t in sqlite_targets for a, n in _chunks(t, jobs)]
    while any(pg_chunks):
        for lst in pg_chunks:
            if lst:
                ordered.append(lst.pop(0))
    try:
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=ctx,
            initializer=_init,
            initargs=({k: v for k, v in steps.items() if k in needed}, progress),
        ) as pool:
            for target, first, count in ordered:
                key = target.store.key
                remaining[key] = remaining.get(key, 0) + 1
                by_future[pool.submit(_load, target, first, count)] = ("load", target)
            while by_future:
                drain(0.2)
                done, _ = wait(list(by_future), timeout=0, return_when=FIRST_COMPLETED)
                for future in done:
                    what, target = by_future.pop(future)
                    key = target.store.key
                    result = future.result()  # re-raises a worker's error
                    if what == "load":
                        remaining[key] -= 1
                        spans[key].append(result)
                        if remaining[key] == 0:
                            # from its first chunk's start to its last chunk's end
                            load_seconds[key] = max(e for _, e in spans[key]) - min(
                                s for s, _ in spans[key]
                            )
                            busy_seconds[key] = sum(e - s for s, e in spans[key])
                            by_future[pool.submit(_settle, target)] = ("settle", target)
                    else:
                        drain(0)
                        bars[key].close()
                        meta = {
                            "fingerprint": fingerprint(target, recording),
                            "complete": True,
                            "target": asdict(target.store) | {"path": str(target.store.path)},
                            "threads": target.threads,
                            "checkpoints_loaded": target.checkpoints,
                            "preload_seconds": load_seconds[key],
                            "preload_busy_seconds": busy_seconds[key],
                            "preload_chunks": len(spans[key]),
                            "preload_jobs": jobs,
                            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            **result,
                        }
                        meta["target"].pop("url", None)
                        meta["target"].pop("admin_url", None)
                        meta_path(out, target.store).write_text(json.dumps(meta, indent=2))
                        results[key] = {**meta, "cached": False}
                        log(
                            f"{key}: {target.checkpoints:,} checkpoints in "
                            f"{load_seconds[key]:.0f} s "
                            f"({target.checkpoints / max(load_seconds[key], 1e-9):,.0f}/s), "
                            f"{result['bytes'] / 2**20:,.1f} MiB"
                        )
    finally:
        for bar in bars.values():
            bar.close()
    return results
