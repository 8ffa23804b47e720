"""Retention as plans: generators that yield one operation per transaction (a batch of
threads each) and receive its result, so a large clean-up never holds locks for long.

Pruning keeps, per thread and namespace, the latest checkpoint and what the policy keeps,
plus every ancestor a kept checkpoint needs to rebuild its `DeltaChannel`s (as
`ops.prune` does), and the writes of all it keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from itertools import groupby
from typing import Any, TypeVar

from ..errors import ConfigError
from . import ops
from . import thread_model as tm
from .dialect import Dialect
from .rows import ShapeRow
from .stmt import Op, Params, Stmt
from .thread_model import Removed
from .thread_sql import WRITE_COUNT

T = TypeVar("T")

#: A plan yields (operation, is_write) pairs, each run in its own transaction, and is
#: sent each one's result.
Plan = Generator[tuple[Op[Any], bool], Any, T]

#: Chooses, from one namespace's checkpoints (newest first), the ids a policy keeps.
Policy = Callable[[Sequence[ShapeRow]], set[str]]

DEFAULT_BATCH = 100

#: Ages are clamped to this many seconds (1000 years): older than that is older than
#: anything stored, and both engines' clocks reach that far back.
MAX_AGE = 1000 * 365.25 * 86400


def _batch(batch_size: Any) -> int:
    return tm.check_limit(batch_size, 100_000, "batch_size")


def cutoff(d: Dialect, age: Any) -> Op[Any]:
    """The database clock's time `age` (at most `MAX_AGE`) ago, as it stores times."""
    return (yield Stmt(d.threads.cutoff, {"seconds": min(tm.seconds(age), MAX_AGE)}))[0][0]


def prune_older_than(d: Dialect, age: Any, batch_size: int = DEFAULT_BATCH) -> Plan[Removed]:
    """Delete checkpoints (and their writes) created more than `age` ago, except each
    thread's latest and what kept checkpoints need."""
    size = _batch(batch_size)
    limit = yield cutoff(d, age), False

    def policy(rows: Sequence[ShapeRow]) -> set[str]:
        return {r.thread_ts for r in rows if r.created_at >= limit}

    return (yield from _prune_all(d, size, policy))


def keep_last(d: Dialect, n: Any, batch_size: int = DEFAULT_BATCH) -> Plan[Removed]:
    """Keep the last `n` checkpoints of each thread and namespace (and what they need)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"keep_last needs n >= 1 (to delete threads, delete them), got {n!r}")

    def policy(rows: Sequence[ShapeRow]) -> set[str]:
        return {r.thread_ts for r in rows[:n]}

    return (yield from _prune_all(d, _batch(batch_size), policy))


def _prune_all(d: Dialect, size: int, policy: Policy) -> Plan[Removed]:
    removed, after = Removed(), ""
    while True:
        ids = yield _ids_after(d, after, size), False
        if not ids:
            return removed
        removed += yield _prune_batch(d, ids, policy), True
        after = ids[-1]


def _ids_after(d: Dialect, after: str, size: int) -> Op[list[str]]:
    return [row[0] for row in (yield Stmt(d.threads.ids_after, {"after": after, "limit": size}))]


def _prune_batch(d: Dialect, ids: list[str], policy: Policy) -> Op[Removed]:
    yield from ops.lock_threads(d, ids)  # no put adds a snapshot while values are swept
    shapes = [
        ShapeRow._make(r) for r in (yield Stmt(d.threads.shapes, {"thread_ids": d.array(ids)}))
    ]
    removed = Removed()
    for (tid, ns), group in groupby(shapes, key=lambda r: (r.thread_id, r.checkpoint_ns)):
        rows = list(group)
        keep = policy(rows) | {rows[0].thread_ts}
        for row in rows:  # the oldest kept checkpoint of each branch needs its deltas
            ts, parent = row.thread_ts, row.parent_ts
            if ts in keep and parent is not None and parent not in keep:
                keep.update((yield from ops.delta_ancestors(d, tid, ns, ts, row.delta_counters)))
        gone = [row.thread_ts for row in rows if row.thread_ts not in keep]
        if gone:
            at = {"thread_id": tid, "checkpoint_ns": ns, "gone": d.array(gone)}
            writes = yield from _counted(d, d.threads.delete_writes, at, WRITE_COUNT)
            cps = yield from _counted(d, d.threads.delete_checkpoints, at)
            removed += Removed((tid,) if tid not in removed.threads else (), cps, writes)
    yield from ops.sweep_values(d, removed.threads)
    return removed


def delete_idle_threads(d: Dialect, age: Any, batch_size: int = DEFAULT_BATCH) -> Plan[Removed]:
    """Delete the threads (rows, checkpoints, writes) with no activity for `age`."""
    size = _batch(batch_size)
    limit = yield cutoff(d, age), False
    removed = Removed()
    while True:
        batch = yield _delete_idle_batch(d, limit, size), True
        if batch is None:
            return removed
        removed += batch


def _delete_idle_batch(d: Dialect, limit: Any, size: int) -> Op[Removed | None]:
    ids = [row[0] for row in (yield Stmt(d.threads.idle, {"cutoff": limit, "limit": size}))]
    if not ids:
        return None
    yield from ops.lock_threads(d, ids)
    # a thread written to since the SELECT is no longer idle, and stays
    idle = {"thread_ids": d.array(ids), "cutoff": limit}
    gone = [row[0] for row in (yield Stmt(d.threads.delete_idle, idle))]
    if not gone:
        return Removed()
    these = {"thread_ids": d.array(gone)}
    writes = yield from _counted(d, d.threads.delete_threads_writes, these, WRITE_COUNT)
    checkpoints = yield from _counted(d, d.threads.delete_threads_checkpoints, these)
    yield from ops.sweep_values(d, gone)
    return Removed(tuple(gone), checkpoints, writes)


def _counted(d: Dialect, sql: str, params: Params, each: str = "1") -> Op[int]:
    """Run a DELETE; the sum of `each` over the rows it deleted."""
    rows = yield Stmt(d.counted(sql, each), params)
    return sum(int(n) for (n,) in rows)
