"""The thread registry as sans-I/O operations (see `ops`): create, read, page, update,
copy and delete threads. Each operation runs in one transaction."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, NotFoundError, ThreadExistsError
from . import ops
from . import thread_model as tm
from .config import thread_id_of
from .dialect import Dialect
from .fragments import Filter
from .retention import MAX_AGE
from .rows import ChannelBytesRow, StatsRow, ThreadRow
from .search import BY_ACTIVITY, Search, Sort
from .stmt import Op, Stmt
from .thread_model import Thread, ThreadPage, ThreadStats

#: Marks an argument that was not given (None is a value for some).
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def create(d: Dialect, thread_id: Any, user_id: Any, title: Any, metadata: Any) -> Op[Thread]:
    """A new thread; ThreadExistsError if the id is taken."""
    tid = tm.new_thread_id(thread_id)
    meta = tm.check_metadata({} if metadata is None else metadata)
    params = {
        "thread_id": tid,
        "user_id": tm.check_user_id(user_id),
        "title": tm.check_title(title),
        "metadata": tm.dump_metadata(meta),
    }
    rows = yield Stmt(d.threads.insert, params)
    if not rows:
        raise ThreadExistsError(f"thread {tid!r} already exists")
    return tm.to_thread(rows[0])


def get(d: Dialect, thread_id: Any) -> Op[Thread | None]:
    rows = yield Stmt(d.threads.get, {"thread_id": thread_id_of(thread_id)})
    return tm.to_thread(rows[0]) if rows else None


def existing(d: Dialect, thread_id: Any, *, lock: bool = False) -> Op[Thread]:
    """The thread, or NotFoundError."""
    tid = thread_id_of(thread_id)
    rows = yield Stmt(d.threads.get_for_update if lock else d.threads.get, {"thread_id": tid})
    if not rows:
        raise NotFoundError(f"thread {tid!r} does not exist")
    return tm.to_thread(rows[0])


#: Threads read in index order for a metadata filter before its index is asked (see `page`).
WINDOW = 1000


def _filters(
    d: Dialect,
    user_id: Any,
    status: Any,
    run_state: Any,
    metadata: Any,
    expires_within: Any = None,
    search: Search | None = None,
) -> tuple[Filter, Filter]:
    clauses, params = d.threads.where(
        tm.check_user_id(user_id),
        tm.check_choice(status, "status", tm.STATUSES),
        tm.check_choice(run_state, "run_state", tm.RUN_STATES),
        None
        if expires_within is None
        else min(tm.seconds(expires_within, "expires_within"), MAX_AGE),
    )
    if search is not None:
        more, values = search.where(d)
        clauses, params = clauses + more, {**params, **values}
    checked = None if metadata is None else tm.check_metadata(metadata, "metadata filter")
    return (clauses, params), d.threads.matching(checked)


def page(
    d: Dialect,
    user_id: Any,
    status: Any,
    run_state: Any,
    metadata: Any,
    limit: Any,
    cursor: Any,
    expires_within: Any = None,
    search: Search | None = None,
    sort: Sort = BY_ACTIVITY,
) -> Op[ThreadPage]:
    """Threads in `sort` order (latest activity first), after `cursor` (keyset, no
    OFFSET), which must come from a page in the same order.

    With a metadata filter on an engine that indexes metadata, the next `WINDOW` threads
    are read in index order first (a common value fills the page there), and only then
    the metadata index (for a rare one): an engine planning the statement without its
    values (a cached plan) would otherwise sort every match of a common value.
    """
    where, matching = _filters(d, user_id, status, run_state, metadata, expires_within, search)
    limit = tm.check_limit(limit)
    after = None if cursor is None else tm.decode_cursor(cursor, sort.name)
    both = (where[0] + matching[0], {**where[1], **matching[1]})
    t = d.threads
    if not matching[0] or not d.metadata_index:
        rows = yield Stmt(*t.page(both, after, limit + 1, sort))
    else:
        rows = yield Stmt(*t.window(where, matching, after, WINDOW, limit + 1, sort))
        if len(rows) <= limit:
            edge = yield Stmt(*t.position(where, after, WINDOW - 1, sort))
            if edge:
                rows += yield Stmt(*t.page(both, tuple(edge[0]), limit + 1 - len(rows), sort))
    more = len(rows) > limit
    rows = rows[:limit]
    last = ThreadRow._make(rows[-1]) if more else None
    cursor = None
    if last is not None:
        at = last.updated_at if sort.by == "updated_at" else last.created_at
        cursor = tm.encode_cursor(at, last.thread_id, sort.name)
    return ThreadPage([tm.to_thread(r) for r in rows], cursor)


def count(d: Dialect, *filters: Any) -> Op[int]:
    """How many threads `page` finds with the same `filters` (user_id, status, run_state,
    metadata, and optionally expires_within and a `Search`)."""
    where, matching = _filters(d, *filters)
    sql, params = d.threads.count((where[0] + matching[0], {**where[1], **matching[1]}))
    return int((yield Stmt(sql, params))[0][0])


def update(
    d: Dialect, thread_id: Any, title: Any = UNSET, metadata: Any = None, status: Any = None
) -> Op[Thread]:
    """Rename, merge metadata (a key set to None is removed) or change the status."""
    patch = None if metadata is None else tm.check_metadata(metadata)
    title = UNSET if title is UNSET else tm.check_title(title)
    tm.check_choice(status, "status", tm.STATUSES)
    old = yield from existing(d, thread_id, lock=True)
    merged = old.metadata if patch is None else tm.merge_metadata(old.metadata, patch)
    params = {
        "thread_id": old.thread_id,
        "title": old.title if title is UNSET else title,
        "metadata": tm.dump_metadata(tm.check_metadata(merged, "merged metadata")),
        "status": status or old.status,
    }
    rows = yield Stmt(d.threads.update, params)
    return tm.to_thread(rows[0])


def delete(d: Dialect, thread_id: Any) -> Op[bool]:
    """Delete a thread, its checkpoints and writes; whether it had a row."""
    tid = thread_id_of(thread_id)
    found = bool((yield Stmt(d.threads.get, {"thread_id": tid})))
    yield from ops.delete_thread(d, tid)
    return found


def copy(d: Dialect, thread_id: Any, new_thread_id: Any) -> Op[Thread]:
    """A new thread with the row, checkpoints and writes of `thread_id`."""
    src, dst = thread_id_of(thread_id), tm.new_thread_id(new_thread_id)
    if src == dst:
        raise ConfigError("a copy needs a thread id other than its source's")
    yield from existing(d, src)
    if (yield Stmt(d.threads.get, {"thread_id": dst})):
        raise ThreadExistsError(f"thread {dst!r} already exists")
    yield from ops.copy_thread(d, src, dst)
    return (yield from existing(d, dst))


def held(d: Dialect, thread_id: Any) -> Op[tuple[int, int]]:
    """(checkpoints, writes) of a thread, without `stats`' byte counts (NotFoundError
    without its row): what an import asks of each thread."""
    tid = thread_id_of(thread_id)
    rows = yield Stmt(d.threads.stats, {"thread_id": tid})
    if not rows:
        raise NotFoundError(f"thread {tid!r} does not exist")
    row = StatsRow._make(rows[0])
    return int(row.checkpoints), int(row.writes)


def stats(d: Dialect, thread_id: Any) -> Op[ThreadStats]:
    tid, settings = thread_id_of(thread_id), d.analysis_settings
    rows = yield Stmt(d.threads.stats, {"thread_id": tid}, settings=settings)
    if not rows:
        raise NotFoundError(f"thread {tid!r} does not exist")
    row = StatsRow._make(rows[0])
    sizes = int(row.checkpoint_bytes), int(row.value_bytes), int(row.write_bytes)
    channels = yield Stmt(d.select_channel_bytes, {"thread_id": tid}, settings=settings)
    by_channel = {c.channel: int(c.bytes) for c in map(ChannelBytesRow._make, channels)}
    return ThreadStats(
        tid,
        int(row.checkpoints),
        int(row.writes),
        sum(sizes),
        tm.timestamp(row.updated_at),
        *sizes,
        by_channel,
    )
