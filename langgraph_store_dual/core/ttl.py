"""Thread time-to-live and erasure as sans-I/O operations and plans (see `retention`).

A thread with a ttl expires at its last activity plus the ttl: every statement that moves
its `updated_at` (the put touching its row, writes reporting an interrupt or an error, an
update through the manager) moves `expires_at` with it, so a thread in use never expires.
A sweep then applies each expired thread's strategy:

- `delete`: the thread goes, with its checkpoints, writes and values;
- `keep_latest`: its older checkpoints go (the latest of each namespace stays, with what
  its `DeltaChannel`s need), and it has no expiry until its next activity.

Each batch re-checks the expiry in the statement that deletes (or prunes) under the
threads' locks: a thread written to after the sweep found it expired stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..errors import ConfigError
from . import retention
from . import thread_model as tm
from . import threads as thread_ops
from .dialect import Dialect
from .ops import Op, Stmt, lock_threads
from .retention import MAX_AGE, Plan
from .rows import ShapeRow
from .thread_model import Removed, Thread
from .thread_sql import WRITE_COUNT
from .threads import UNSET
from .ttl_sql import TtlSql

STRATEGIES = ("delete", "keep_latest")


@cache
def sql_of(d: Dialect) -> TtlSql:
    """The TTL statements of an engine (one per dialect)."""
    return TtlSql(d, d.threads.columns)


def check_ttl(ttl: Any) -> float | None:
    """A ttl (timedelta or seconds, > 0, at most `MAX_AGE`) in seconds; None is no ttl."""
    if ttl is None:
        return None
    seconds = tm.seconds(ttl, "ttl")
    if not 0 < seconds <= MAX_AGE:
        raise ConfigError(f"ttl must be more than 0 seconds and at most 1000 years, got {ttl!r}")
    return seconds


def check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise ConfigError(f"ttl_strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    return str(strategy)


@dataclass(frozen=True, slots=True)
class TtlDefaults:
    """A saver's ttl for the threads it creates (None: no ttl), and the default strategy."""

    ttl: float | None = None
    strategy: str = "delete"

    @classmethod
    def of(cls, ttl: Any, strategy: Any) -> TtlDefaults:
        return cls(check_ttl(ttl), check_strategy(strategy))

    @property
    def params(self) -> dict[str, Any]:
        """The `ttl_seconds` and `ttl_strategy` parameters of a put's thread upsert."""
        return {"ttl_seconds": self.ttl, "ttl_strategy": self.strategy if self.ttl else None}


def _need_ttl(seconds: float | None, strategy: Any) -> None:
    if seconds is None and strategy is not UNSET:
        raise ConfigError("a ttl_strategy goes with a ttl: give ttl= too (the thread has none)")


def _patch(
    d: Dialect, thread: Thread, user_id: Any, ttl: float | None, strategy: str
) -> Op[Thread]:
    params = {
        "thread_id": thread.thread_id,
        "user_id": user_id,
        "ttl_seconds": ttl,
        "ttl_strategy": strategy if ttl is not None else None,
    }
    rows = yield Stmt(sql_of(d).patch, params)
    return tm.to_thread(rows[0])


def create(
    d: Dialect,
    defaults: TtlDefaults,
    thread_id: Any,
    user_id: Any,
    title: Any,
    metadata: Any,
    ttl: Any = UNSET,
    strategy: Any = UNSET,
) -> Op[Thread]:
    """A new thread (`threads.create`) with a ttl: `ttl`, else the saver's default."""
    seconds = defaults.ttl if ttl is UNSET else check_ttl(ttl)
    _need_ttl(seconds, strategy)
    how = defaults.strategy if strategy is UNSET else check_strategy(strategy)
    thread = yield from thread_ops.create(d, thread_id, user_id, title, metadata)
    if seconds is None:
        return thread
    return (yield from _patch(d, thread, thread.user_id, seconds, how))


def update(
    d: Dialect,
    defaults: TtlDefaults,
    thread_id: Any,
    title: Any = UNSET,
    metadata: Any = None,
    user_id: Any = UNSET,
    ttl: Any = UNSET,
    strategy: Any = UNSET,
) -> Op[Thread]:
    """`thread_ops.update`, and a new owner or ttl (None removes them). A ttl given alone
    keeps the thread's strategy (or takes the saver's); either starts the ttl from now."""
    owner = UNSET if user_id is UNSET else tm.check_user_id(user_id)
    seconds = UNSET if ttl is UNSET else check_ttl(ttl)
    how = UNSET if strategy is UNSET else check_strategy(strategy)
    if owner is UNSET and seconds is UNSET and how is UNSET:  # an update is activity
        return (yield from thread_ops.update(d, thread_id, title, metadata))
    if title is not UNSET or metadata is not None:
        thread = yield from thread_ops.update(d, thread_id, title, metadata)
    else:
        thread = yield from thread_ops.existing(d, thread_id, lock=True)
    if seconds is UNSET:
        seconds = None if thread.ttl is None else thread.ttl.total_seconds()
    _need_ttl(seconds, how)
    if how is UNSET:
        how = thread.ttl_strategy or defaults.strategy
    owner = thread.user_id if owner is UNSET else owner
    return (yield from _patch(d, thread, owner, seconds, how))


# -- plans: one transaction per batch ------------------------------------------------------


def sweep(
    d: Dialect, limit: Any = None, batch_size: Any = retention.DEFAULT_BATCH
) -> Plan[Removed]:
    """Apply the strategy of each thread expired now (the database's clock), at most
    `limit` threads (None: all), `batch_size` per transaction. `Removed.threads`: those
    deleted and those pruned of checkpoints."""
    size = tm.check_limit(batch_size, 100_000, "batch_size")
    left = None if limit is None else tm.check_limit(limit, 10**9, "limit")
    cutoff = yield retention.cutoff(d, 0), False
    removed = Removed()
    while left is None or left > 0:
        take = size if left is None else min(size, left)
        ids = yield _ids(sql_of(d).expired, {"cutoff": cutoff, "limit": take}), False
        if not ids:
            break
        removed += yield _sweep_batch(d, ids, cutoff), True
        left = None if left is None else left - len(ids)
    return removed


def _ids(sql: str, params: dict[str, Any]) -> Op[list[str]]:
    return [row[0] for row in (yield Stmt(sql, params))]


def _keep_nothing(rows: Sequence[ShapeRow]) -> set[str]:
    return set()  # the latest of each namespace (and its delta ancestors) stays anyway


def _sweep_batch(d: Dialect, ids: list[str], cutoff: Any) -> Op[Removed]:
    yield from lock_threads(d, ids)
    sql, these = sql_of(d), {"thread_ids": d.array(ids), "cutoff": cutoff}
    gone = [row[0] for row in (yield Stmt(sql.delete_expired, these))]
    removed = yield from _delete_rows_of(d, gone)
    kept = [row[0] for row in (yield Stmt(sql.keep_expired, these))]
    if kept:
        removed += yield from retention._prune_batch(d, kept, _keep_nothing)
    return removed


def delete_user(
    d: Dialect, user_id: Any, batch_size: Any = retention.DEFAULT_BATCH
) -> Plan[Removed]:
    """Delete every thread the user owns, with its checkpoints, writes and values,
    `batch_size` threads per transaction."""
    owner = tm.check_user_id(user_id)
    if owner is None:
        raise ConfigError("delete_user needs a user_id (threads without one belong to no user)")
    size = tm.check_limit(batch_size, 100_000, "batch_size")
    removed = Removed()
    while True:
        ids = yield _ids(sql_of(d).owned, {"user_id": owner, "limit": size}), False
        if not ids:
            return removed
        removed += yield _delete_owned(d, owner, ids), True


def _delete_owned(d: Dialect, owner: str, ids: list[str]) -> Op[Removed]:
    yield from lock_threads(d, ids)
    # a thread given to another owner since the SELECT stays
    these = {"thread_ids": d.array(ids), "user_id": owner}
    gone = [row[0] for row in (yield Stmt(sql_of(d).delete_owned, these))]
    return (yield from _delete_rows_of(d, gone))


def _delete_rows_of(d: Dialect, gone: list[str]) -> Op[Removed]:
    """Delete the checkpoints, writes and values of threads whose rows were deleted."""
    if not gone:
        return Removed()
    these = {"thread_ids": d.array(gone)}
    writes = yield from retention._counted(d, d.threads.delete_threads_writes, these, WRITE_COUNT)
    checkpoints = yield from retention._counted(d, d.threads.delete_threads_checkpoints, these)
    yield Stmt(sql_of(d).delete_values, these, fetch=False)
    return Removed(tuple(gone), checkpoints, writes)
