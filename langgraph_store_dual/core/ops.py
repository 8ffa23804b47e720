"""LangGraph's checkpoint rules, written once as sans-I/O operations.

Each operation is a generator: it yields the statements it needs (`Stmt`) and receives
their rows back, then returns its result. `run` and `arun` drive a generator with a sync
or async `execute`; the savers add transactions and connections. Nothing here touches a
database, so the four savers (two engines x sync/async) share every rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_metadata,
)

from ..codec import JsonCodec, ValueCache, decode_plain
from ..errors import ConfigError, DecodeError, SchemaVersionError
from ..fresh import gc_paused
from . import records, thread_model
from .config import Target, check_id, target, thread_id_of
from .dialect import Dialect
from .intern import refs_in
from .listing import ListPages as ListPages
from .listing import ListPlan as ListPlan
from .listing import ListReader as ListReader
from .listing import list_plan as list_plan
from .rows import (
    CHECKPOINT,
    HASH,
    PARENT_TS,
    REFS,
    SENDS,
    THREAD_ID,
    VALUE,
    VALUE_REFS,
    ChainRow,
    HeadRow,
    ReferenceRow,
    SeedRow,
    StoredThreadRow,
)
from .stmt import Op as Op
from .stmt import Params as Params
from .stmt import Routine, Sql, merged
from .stmt import Rows as Rows
from .stmt import Stmt as Stmt
from .values import ChannelMemo as ChannelMemo
from .values import ValueCaches as ValueCaches
from .values import load_values

T = TypeVar("T")

#: The thread-row parameters of a put by a saver without a default ttl (see `core.ttl`).
NO_TTL: Mapping[str, Any] = MappingProxyType({"ttl_seconds": None, "ttl_strategy": None})


def run(op: Op[T], execute: Callable[[Stmt], Rows]) -> T:
    """Drive an operation with a blocking `execute`."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as done:
        return cast(T, done.value)


async def arun(op: Op[T], execute: Callable[[Stmt], Awaitable[Rows]]) -> T:
    """Drive an operation with an awaitable `execute`."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(await execute(stmt))
    except StopIteration as done:
        return cast(T, done.value)


def single_statement(op: Op[T]) -> tuple[Stmt, T] | Op[T]:
    """`(statement, result)` when `op` is one statement whose rows it ignores, which an
    engine may run alone in autocommit (atomic, no BEGIN/COMMIT); otherwise an operation
    equivalent to `op` to run as usual."""
    try:
        first = next(op)
    except StopIteration as done:
        return _returning(done.value)
    if first.fetch or (first.many and len(first.params) != 1):
        return _resumed(op, [first])
    try:
        second = op.send([])
    except StopIteration as done:
        if first.many:
            first = Stmt(first.sql, cast(Sequence[Params], first.params)[0], fetch=False)
        return first, cast(T, done.value)
    return _resumed(op, [first, second])


def _returning(value: T) -> Op[T]:
    return value
    yield


def _resumed(op: Op[T], taken: list[Stmt]) -> Op[T]:
    """`op` after `taken` statements were drawn from it in advance (all but the last
    with their rows ignored): yields those first, then the rest of `op`."""
    rows: Rows = []
    for stmt in taken:
        rows = yield stmt
    try:
        while True:
            rows = yield op.send(rows)
    except StopIteration as done:
        return cast(T, done.value)


def select(sql: str, params: Params) -> Op[Rows]:
    """All rows of one statement (for engines that cannot stream on a shared connection)."""
    return (yield Stmt(sql, params))


# -- schema -----------------------------------------------------------------------------


def ensure_schema(d: Dialect, *, create: bool) -> Op[int]:
    """Bring the schema to the latest version (or check it, if `create` is false).

    Run it in a write transaction: concurrent callers are serialised by the engine's
    lock (`lock_setup`) and the version is read again under it.
    """
    latest = len(d.migrations)
    if d.lock_setup:
        yield Stmt(d.lock_setup, fetch=False)
    if not (yield Stmt(d.select_version_table)):
        if not create:
            raise SchemaVersionError(
                "the database has no langgraph-store-dual schema: call setup() "
                "(or create the saver with auto_setup=True)"
            )
        taken = [name for (name,) in (yield Stmt(d.select_taken_tables))]
        if taken:
            raise SchemaVersionError(
                f"the database already has tables named {', '.join(taken)} that "
                "langgraph-store-dual did not create (the official LangGraph savers use "
                "these names): give this saver its own database (or, on PostgreSQL, its "
                "own schema with ?options=-csearch_path%3Dagents)"
            )
        yield Stmt(d.create_version_table, fetch=False)
    current = (yield Stmt(d.select_version))[0][0] or 0
    if current > latest:
        raise SchemaVersionError(
            f"the database schema is at version {current}, newer than version {latest} that "
            "this langgraph-store-dual understands: upgrade the package"
        )
    if current < latest and not create:
        raise SchemaVersionError(
            f"the database schema is at version {current}, this package needs {latest}: "
            "call setup() to migrate it"
        )
    for version in range(current, latest):
        for sql in d.migrations[version]:
            yield Stmt(sql, fetch=False)
        yield Stmt(d.insert_version, {"version": version + 1}, fetch=False)
    yield from _ensure_routines(d, create=create)
    return latest


def missing_routines(d: Dialect) -> Op[list[Routine]]:
    """The dialect's routines the database lacks, by name."""
    if not (d.routines and d.select_routines):
        return []
    routines = sorted(d.routines.values())
    rows = yield Stmt(d.select_routines, {"names": d.array([r.name for r in routines])})
    have = {name for (name,) in rows}
    return [r for r in routines if r.name not in have]


def _ensure_routines(d: Dialect, *, create: bool) -> Op[None]:
    """Create the dialect's routines the database lacks (or, unless `create`, refuse)."""
    missing = yield from missing_routines(d)
    if missing and not create:
        raise SchemaVersionError(
            f"the database lacks {len(missing)} function(s) this version of "
            "langgraph-store-dual calls (such as "
            f"{missing[0].name}): call setup() to create them"
        )
    for r in missing:
        yield Stmt(r.create, fetch=False)


# -- reads ------------------------------------------------------------------------------


def get_tuple(
    d: Dialect, codec: JsonCodec, config: RunnableConfig, caches: ValueCaches | None = None
) -> Op[CheckpointTuple | None]:
    """The checkpoint a config names, or the latest of its thread and namespace, with the
    stored values it needs that `caches` (kept across reads) does not hold yet."""
    t = target(config)
    texts = caches.get(t.thread_id) if caches is not None else records.ValueTexts()
    # A thread read before (its texts are here) keeps what its values decode to: a read
    # then copies them. Not on a first read, which would pay for planning the copies
    # (as much as decoding) whether or not the thread is read again.
    values = caches.take_decoded(t.thread_id, texts) if caches is not None and texts else None
    known = d.array(list(texts))
    params = {"thread_id": t.thread_id, "checkpoint_ns": t.checkpoint_ns, "known": known}
    if t.checkpoint_id:
        params["thread_ts"] = t.checkpoint_id
        rows = yield Stmt(d.select_by_id, params)
    else:
        rows = yield Stmt(d.select_latest, params)
    head = next((r for r in rows if r[THREAD_ID] is not None), None)  # ReadRow
    if head is None:
        return None
    if (
        d.select_sends
        and head[PARENT_TS] is not None
        and head[SENDS] is None
        and records.before_v4(head[CHECKPOINT])
    ):
        parent = {"thread_id": t.thread_id, "checkpoint_ns": t.checkpoint_ns}
        ((sends,),) = yield Stmt(d.select_sends, {**parent, "thread_ts": head[PARENT_TS]})
        head = (*head[:SENDS], sends, *head[SENDS + 1 :])
    listed: list[Sequence[Any]] = [
        (r[HASH], r[VALUE], r[VALUE_REFS]) for r in rows if r[THREAD_ID] is None
    ]
    # (On SQLite, not when the caches hold every value listed, as after this saver's put:
    # what they hold, they hold with the values it refers to.)
    if (
        d.select_listed_values
        and head[REFS] is not None
        and not all(h in texts for h in records.load_refs(head[REFS]))
    ):
        params = {"thread_id": t.thread_id, "refs": head[REFS], "known": known}
        listed += yield Stmt(d.select_listed_values, params)  # ListedValueRow
    below: set[str] = set()
    for h, text, refs in listed:
        if type(h) is not str or type(text) is not str:
            raise DecodeError("stored values of a checkpoint are malformed")
        texts.add(h, text)
        below.update(records.load_refs(refs))
    # A snapshot listing only the values it refers to directly (a long thread's, or one
    # stored before snapshots listed their closure) needs the values those refer to.
    missing = below.difference(texts)
    if missing:
        yield from load_values(d, {t.thread_id: texts}, {(t.thread_id, h) for h in missing})
    with gc_paused():  # a long thread's state is many objects the caller keeps
        got = records.to_tuple(
            head, codec, config if t.checkpoint_id else None, values=values, texts=texts
        )
    if caches is not None and values is not None:
        caches.keep_decoded(t.thread_id, values)
    return got


# -- writes -----------------------------------------------------------------------------


def put(
    d: Dialect,
    codec: JsonCodec,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    ttl: Mapping[str, Any] = NO_TTL,
    caches: ValueCaches | None = None,
) -> Op[RunnableConfig]:
    """Store a checkpoint and the values its snapshot refers to; `config`'s checkpoint id
    becomes its parent. One statement on engines whose `upsert_checkpoint` inserts the
    values too (a data-modifying CTE), two otherwise. `ttl`: the saver's default ttl
    parameters, for a thread the put creates; `caches`: the saver's, which learn the
    values of a thread they keep."""
    t = target(config)
    meta = get_checkpoint_metadata(config, metadata)
    memo = caches.channels if caches is not None else None
    known = memo.get(t.thread_id, t.checkpoint_ns) if memo is not None else {}
    record = records.checkpoint_record(t, checkpoint, meta, codec, known)
    if memo is not None:
        memo.keep(t.thread_id, t.checkpoint_ns, record.channels)
    if d.insert_values and record.values:
        yield Stmt(d.insert_values, record.value_rows(), many=True, fetch=False)
    touch = thread_model.touch_values(t, checkpoint, meta, codec.native)
    touch.update(ttl)
    yield from _together(d, d.upsert_checkpoint, d.threads.touch, d.put_params(record), touch)
    if caches is not None and record.values:
        written = record.values.items()
        caches.add_written(t.thread_id, ((h, data.decode()) for h, (data, _) in written))
    return Target(t.thread_id, t.checkpoint_ns, checkpoint["id"]).config()


def _together(
    d: Dialect, write: Sql, then: Sql, params: Mapping[str, Any], more: Mapping[str, Any]
) -> Op[None]:
    """`write` and `then` (the upsert of its thread's row), in one statement where the
    engine can: the thread list never lags the checkpoints and costs no round trip.
    Their parameters are named alike (a name both use has one value)."""
    both = merged(params, more)
    for sql in d.together(write, then):
        yield Stmt(sql.text, both, fetch=False)


def put_writes(
    d: Dialect,
    codec: JsonCodec,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    ttl: Mapping[str, Any] = NO_TTL,
) -> Op[None]:
    """Store a task's writes against the checkpoint `config` names."""
    t = target(config, need_id=True)
    if writes:
        row = records.write_row(t, writes, task_id, task_path, codec)
        noted = thread_model.state_values(t, config, [channel for channel, _ in writes])
        if not noted:
            yield Stmt(d.upsert_writes.text, row, fetch=False)
            return
        noted.update(ttl)
        # interrupts and errors: in the same statement where the engine can
        yield from _together(d, d.upsert_writes, d.threads.note_state, row, noted)


def lock_threads(d: Dialect, thread_ids: Iterable[str], *, shared: bool = False) -> Op[None]:
    """Keep puts (or, `shared`, sweeps) of these threads out until the transaction ends."""
    sql = d.share_threads if shared else d.lock_threads
    if sql:
        yield Stmt(sql, {"thread_ids": d.array(sorted(set(thread_ids)))}, fetch=False)


def sweep_values(d: Dialect, thread_ids: Iterable[str]) -> Op[None]:
    """Delete the stored values no remaining snapshot of these threads refers to.

    For deletions of checkpoints by other means (retention): run it in their transaction.
    """
    tids = sorted(set(thread_ids))
    yield from lock_threads(d, tids)
    for tid in tids:
        yield Stmt(d.sweep_values, {"thread_id": tid}, fetch=False)


def delete_thread(d: Dialect, thread_id: str) -> Op[None]:
    """Delete a thread: its row, its checkpoints, writes and values, in every namespace."""
    tid = thread_id_of(thread_id)
    yield from lock_threads(d, [tid])
    yield Stmt(d.threads.delete, {"thread_id": tid}, fetch=False)
    yield from _delete_all(d, tid)


def _delete_all(d: Dialect, tid: str) -> Op[None]:
    """Delete a thread's checkpoints, writes and values (not its row)."""
    params = {"thread_id": tid}
    yield Stmt(d.delete_thread_writes, params, fetch=False)
    yield Stmt(d.delete_thread_checkpoints, params, fetch=False)
    yield Stmt(d.delete_thread_values, params, fetch=False)


def delete_for_runs(d: Dialect, run_ids: Sequence[str]) -> Op[None]:
    """Delete the checkpoints (and their writes) that the given runs created, and the
    values only they referred to."""
    ids = [check_id(str(r), "run_id") for r in run_ids]
    if ids:
        params = {"run_ids": d.array(ids)}
        yield Stmt(d.delete_run_writes, params, fetch=False)
        tids = {tid for (tid,) in (yield Stmt(d.delete_run_checkpoints, params))}
        yield from sweep_values(d, tids)
        yield from refresh_threads(d, tids)


def refresh_threads(d: Dialect, thread_ids: Iterable[str]) -> Op[None]:
    """Recompute each thread's latest checkpoint and run state from what is stored: for
    changes to its checkpoints other than `put` (deletions, copies, forks)."""
    for tid in sorted(set(thread_ids)):
        for sql in d.threads.refresh:
            yield Stmt(sql, {"thread_id": tid}, fetch=False)


def copy_thread(d: Dialect, source_thread_id: str, target_thread_id: str) -> Op[None]:
    """Copy every checkpoint and write of a thread, parent links included, and the values
    they refer to, server-side; and its row (owner, title, metadata) unless the target has one."""
    src, dst = thread_id_of(source_thread_id), thread_id_of(target_thread_id)
    if src == dst:
        raise ConfigError("copy_thread needs two different thread ids")
    yield from lock_threads(d, [src, dst], shared=True)
    names = {"target": dst, "source": src}
    first, *rest = d.copy_thread  # the row joins the first where the engine can
    yield from _together(d, first, d.threads.copy, names, names)
    for sql in rest:
        yield Stmt(sql.text, names, fetch=False)
    yield from refresh_threads(d, [dst])


def prune(d: Dialect, thread_ids: Iterable[str], strategy: str) -> Op[None]:
    """Delete all of each thread (`"delete"`) or all but what its latest checkpoints need.

    `"keep_latest"` keeps, per namespace, the latest checkpoint and, when its graph uses
    `DeltaChannel`, every ancestor (with its writes) back to the nearest snapshot of each
    delta channel, so the kept state still reconstructs; then the values no kept snapshot
    refers to go.
    """
    if strategy not in ("keep_latest", "delete"):
        raise ConfigError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    tids = [thread_id_of(t) for t in thread_ids]
    yield from lock_threads(d, tids)
    for tid in tids:
        if strategy == "delete":
            yield from _delete_all(d, tid)
            yield from refresh_threads(d, [tid])
            continue
        for row in (yield Stmt(d.select_heads, {"thread_id": tid})):
            head = HeadRow._make(row)
            ts = head.thread_ts
            keep = [
                ts,
                *(yield from delta_ancestors(d, tid, head.checkpoint_ns, ts, head.delta_counters)),
            ]
            yield from delete_except(d, tid, head.checkpoint_ns, keep)
        yield Stmt(d.sweep_values, {"thread_id": tid}, fetch=False)


def delete_except(d: Dialect, tid: str, ns: str, keep: Sequence[str]) -> Op[None]:
    """Delete the checkpoints (and their writes) of a thread's namespace but `keep`."""
    params = {"thread_id": tid, "checkpoint_ns": ns, "keep": d.array(keep)}
    yield Stmt(d.delete_ns_writes_except, params, fetch=False)
    yield Stmt(d.delete_ns_checkpoints_except, params, fetch=False)


def delta_ancestors(d: Dialect, tid: str, ns: str, ts: str, counters: Any) -> Op[list[str]]:
    """The ancestors checkpoint `ts` needs to rebuild its `DeltaChannel`s: back to the
    nearest one holding a snapshot of each channel its delta `counters` (JSON) name."""
    pending = (
        set(decode_plain(records.load(counters), allowed_modules=None) or ()) if counters else set()
    )
    keep: list[str] = []
    if pending:
        chain = yield Stmt(d.select_chain, {"thread_id": tid, "checkpoint_ns": ns, "thread_ts": ts})
        for row in chain[1:]:
            link = ChainRow._make(row)
            keep.append(link.thread_ts)
            pending -= set(records.load(link.channels) or ())
            if not pending:
                break
    return keep


def delta_history(
    d: Dialect, codec: JsonCodec, config: RunnableConfig, channels: Sequence[str]
) -> Op[dict[str, DeltaChannelHistory]]:
    """Each channel's writes along the parent chain back to its nearest stored value.

    Three statements whatever the chain length: the chain (with which channels each
    ancestor holds), the writes of the visited ancestors, and the seed values.
    """
    if not channels:
        return {}
    t = target(config)
    at = {"thread_id": t.thread_id, "checkpoint_ns": t.checkpoint_ns}
    head = t.checkpoint_id
    if head is None:
        rows = yield Stmt(d.select_head, at)
        if not rows:
            return {ch: {"writes": []} for ch in channels}
        head = rows[0][0]
    chain = yield Stmt(d.select_chain, {**at, "thread_ts": head})
    remaining = set(channels)
    visited: dict[str, list[str]] = {ch: [] for ch in channels}  # newest first
    seed_at: dict[str, str] = {}
    for row in chain[1:]:
        ts, _, present = ChainRow._make(row)
        held = set(records.load(present) or ())
        for ch in remaining:
            visited[ch].append(ts)
            if ch in held:
                seed_at[ch] = ts
        remaining -= held
        if not remaining:
            break
    walked = sorted({ts for v in visited.values() for ts in v})
    tasks: dict[str, list[Any]] = {}  # ts -> its task rows [task_id, task_path, entries]
    if walked:
        rows = yield Stmt(d.select_chain_writes, {**at, "thread_ts_list": d.array(walked)})
        for ts, task_id, task_path, entries in rows:  # ChainWriteRows
            tasks.setdefault(ts, []).append([task_id, task_path, records.load(entries)])
    seeds: dict[str, Any] = {}
    if seed_at:
        seed_ids = d.array(sorted(set(seed_at.values())))
        rows = yield Stmt(d.select_seeds, {**at, "thread_ts_list": seed_ids})
        seed_rows = [SeedRow._make(row) for row in rows]
        values = {s.thread_ts: records.load(s.checkpoint)["channel_values"] for s in seed_rows}
        texts = records.ValueTexts()
        cache = ValueCache(shared=False, raw=texts)
        refs = {r for s in seed_rows for r in records.load_refs(s.refs)}
        yield from load_values(d, {t.thread_id: texts}, {(t.thread_id, r) for r in refs})
        interned = {s.thread_ts for s in seed_rows if s.refs is not None}
        for ch, ts in seed_at.items():
            seeds[ch] = codec.decode(values[ts][ch], cache if ts in interned else None)
    result: dict[str, DeltaChannelHistory] = {}
    for ch in channels:
        collected: list[PendingWrite] = []
        for ts in reversed(visited[ch]):
            collected.extend(records.pending_writes(tasks.get(ts, []), codec, ch))
        entry: DeltaChannelHistory = {"writes": collected}
        if ch in seeds:
            entry["seed"] = seeds[ch]
        result[ch] = entry
    return result


# -- integrity --------------------------------------------------------------------------


def _reached(roots: Iterable[str], refs: Mapping[str, list[str]]) -> set[str]:
    """The hashes `roots` lead to, following each value's `refs`."""
    live: set[str] = set()
    todo = list(roots)
    while todo:
        h = todo.pop()
        if h not in live:
            live.add(h)
            todo.extend(refs.get(h, ()))
    return live


#: Thread ids `reference_problems` lists per statement, from each table.
STORED_THREADS_PAGE = 500


def reference_problems(d: Dialect, thread_id: str | None = None) -> Op[list[str]]:
    """Check stored references (of one thread, or all): every value's `refs` matches its
    JSON, every snapshot's lists the hashes its JSON refers to or all those it needs, every
    value referred to exists, every value is referred to. Returns the problems found, as
    text; reads everything, so it is for tests and doctors. All threads are read one by
    one (each in one statement), so memory holds one thread's documents at a time."""
    if thread_id is not None:
        return (yield from _thread_reference_problems(d, thread_id))
    problems: list[str] = []
    done: str | None = None  # every thread up to this id is checked
    while True:
        rows = yield Stmt(
            d.select_stored_threads, {"after": done or "", "limit": STORED_THREADS_PAGE}
        )
        found = [StoredThreadRow._make(row) for row in rows]
        # complete up to the last id of a table whose page is full (both: the lower)
        ends = [
            max(r.thread_id for r in found if r.kind == kind)
            for kind in ("c", "v")
            if sum(r.kind == kind for r in found) == STORED_THREADS_PAGE
        ]
        end = min(ends) if ends else None
        for tid in sorted({r.thread_id for r in found}):
            if (done is None or tid > done) and (end is None or tid <= end):
                problems += yield from _thread_reference_problems(d, tid)
        if end is None:
            return problems
        done = end


def _thread_reference_problems(d: Dialect, thread_id: str) -> Op[list[str]]:
    rows = yield Stmt(d.select_references, {"thread_id": thread_id})
    roots: dict[str, set[str]] = {}
    edges: dict[str, dict[str, list[str]]] = {}
    snapshots: list[tuple[str, str, list[str], list[str]]] = []
    problems = []
    for row in rows:
        kind, tid, key, doc, refs = ReferenceRow._make(row)
        what = f"{'checkpoint' if kind == 'c' else 'value'} {tid}/{key}"
        try:
            declared = sorted(set(records.load_refs(refs)))
            found = sorted(set(refs_in(records.load(doc))))
        except DecodeError as exc:
            problems.append(f"{what}: {exc}")
            declared = found = []
        if kind == "c":
            roots.setdefault(tid, set()).update(found)
            snapshots.append((what, tid, declared, found))
        else:
            edges.setdefault(tid, {})[key] = found
            if declared != found:
                problems.append(f"{what}: refs {declared} but its JSON refers to {found}")
    for what, tid, declared, found in snapshots:
        if declared == found:
            continue
        needed = sorted(_reached(found, edges.get(tid, {})))
        if declared != needed:
            problems.append(
                f"{what}: refs {declared} but its JSON refers to {found}, which need {needed}"
            )
    for tid in sorted(roots.keys() | edges.keys()):
        values = edges.get(tid, {})
        live = _reached(roots.get(tid, ()), values)
        problems += [
            f"thread {tid}: value {h} is referred to but missing"
            for h in sorted(live - values.keys())
        ]
        problems += [
            f"thread {tid}: value {h} is stored but unused" for h in sorted(values.keys() - live)
        ]
    return problems
