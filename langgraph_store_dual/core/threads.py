"""The thread registry as sans-I/O operations (see `ops`): create, read, page, update,
copy and delete threads. Each operation runs in one transaction."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, NotFoundError, ThreadExistsError
from . import ops
from . import thread_model as tm
from .config import thread_id_of
from .dialect import Dialect
from .ops import Op, Stmt
from .thread_model import Thread, ThreadPage, ThreadStats

#: Marks an argument that was not given (None is a value for some).
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def create(d: Dialect, thread_id: Any, user_id: Any, title: Any, metadata: Any) -> Op[Thread]:
    """A new thread; ThreadExistsError if the id is taken."""
    tid = tm.new_thread_id(thread_id)
    meta = tm.check_metadata({} if metadata is None else metadata)
    params = (tid, tm.check_user_id(user_id), tm.check_title(title), tm.dump_metadata(meta))
    rows = yield Stmt(d.threads.insert, params)
    if not rows:
        raise ThreadExistsError(f"thread {tid!r} already exists")
    return tm.to_thread(rows[0])


def get(d: Dialect, thread_id: Any) -> Op[Thread | None]:
    rows = yield Stmt(d.threads.get, (thread_id_of(thread_id),))
    return tm.to_thread(rows[0]) if rows else None


def existing(d: Dialect, thread_id: Any, *, lock: bool = False) -> Op[Thread]:
    """The thread, or NotFoundError."""
    tid = thread_id_of(thread_id)
    rows = yield Stmt(d.threads.get_for_update if lock else d.threads.get, (tid,))
    if not rows:
        raise NotFoundError(f"thread {tid!r} does not exist")
    return tm.to_thread(rows[0])


def _filters(
    d: Dialect, user_id: Any, status: Any, run_state: Any, metadata: Any
) -> tuple[list[str], list[Any]]:
    return d.threads.where(
        tm.check_user_id(user_id),
        tm.check_choice(status, "status", tm.STATUSES),
        tm.check_choice(run_state, "run_state", tm.RUN_STATES),
        None if metadata is None else tm.check_metadata(metadata, "metadata filter"),
    )


def page(
    d: Dialect,
    user_id: Any,
    status: Any,
    run_state: Any,
    metadata: Any,
    limit: Any,
    cursor: Any,
) -> Op[ThreadPage]:
    """Threads by latest activity, newest first, after `cursor` (keyset, no OFFSET)."""
    where, params = _filters(d, user_id, status, run_state, metadata)
    limit = tm.check_limit(limit)
    after = None if cursor is None else tm.decode_cursor(cursor)
    sql, params = d.threads.page(where, params, after, limit + 1)
    rows = yield Stmt(sql, params)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = tm.encode_cursor(rows[-1][7], rows[-1][0]) if more else None
    return ThreadPage([tm.to_thread(r) for r in rows], cursor)


def count(d: Dialect, user_id: Any, status: Any, run_state: Any, metadata: Any) -> Op[int]:
    sql, params = d.threads.count(*_filters(d, user_id, status, run_state, metadata))
    return (yield Stmt(sql, params))[0][0]


def update(
    d: Dialect, thread_id: Any, title: Any = UNSET, metadata: Any = None, status: Any = None
) -> Op[Thread]:
    """Rename, merge metadata (a key set to None is removed) or change the status."""
    patch = None if metadata is None else tm.check_metadata(metadata)
    title = UNSET if title is UNSET else tm.check_title(title)
    tm.check_choice(status, "status", tm.STATUSES)
    old = yield from existing(d, thread_id, lock=True)
    merged = old.metadata if patch is None else tm.merge_metadata(old.metadata, patch)
    params = (
        old.title if title is UNSET else title,
        tm.dump_metadata(tm.check_metadata(merged, "merged metadata")),
        status or old.status,
        old.thread_id,
    )
    rows = yield Stmt(d.threads.update, params)
    return tm.to_thread(rows[0])


def delete(d: Dialect, thread_id: Any) -> Op[bool]:
    """Delete a thread, its checkpoints and writes; whether it had a row."""
    tid = thread_id_of(thread_id)
    found = bool((yield Stmt(d.threads.get, (tid,))))
    yield from ops.delete_thread(d, tid)
    return found


def copy(d: Dialect, thread_id: Any, new_thread_id: Any) -> Op[Thread]:
    """A new thread with the row, checkpoints and writes of `thread_id`."""
    src, dst = thread_id_of(thread_id), tm.new_thread_id(new_thread_id)
    if src == dst:
        raise ConfigError("a copy needs a thread id other than its source's")
    yield from existing(d, src)
    if (yield Stmt(d.threads.get, (dst,))):
        raise ThreadExistsError(f"thread {dst!r} already exists")
    yield from ops.copy_thread(d, src, dst)
    return (yield from existing(d, dst))


def stats(d: Dialect, thread_id: Any) -> Op[ThreadStats]:
    tid = thread_id_of(thread_id)
    rows = yield Stmt(d.threads.stats, (tid,))
    if not rows:
        raise NotFoundError(f"thread {tid!r} does not exist")
    updated, checkpoints, writes, checkpoint_bytes, write_bytes = rows[0]
    size = int(checkpoint_bytes) + int(write_bytes)
    return ThreadStats(tid, checkpoints, writes, size, tm.timestamp(updated))
