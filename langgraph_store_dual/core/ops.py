"""LangGraph's checkpoint rules, written once as sans-I/O operations.

Each operation is a generator: it yields the statements it needs (`Stmt`) and receives
their rows back, then returns its result. `run` and `arun` drive a generator with a sync
or async `execute`; the savers add transactions and connections. Nothing here touches a
database, so the four savers (two engines x sync/async) share every rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
)

from ..codec import MAP_ORDER, MAP_PAIRS, TAG, JsonCodec, ValueCache, decode_plain
from ..errors import ConfigError, DecodeError, SchemaVersionError
from ..fresh import gc_paused
from . import records, thread_model
from .config import Target, check_id, checkpoint_id_of, configurable, target, thread_id_of
from .dialect import Dialect, ListWhere
from .intern import refs_in
from .stmt import Op as Op
from .stmt import Rows as Rows
from .stmt import Stmt as Stmt
from .values import ListReader as ListReader
from .values import ValueCaches as ValueCaches
from .values import load_values

T = TypeVar("T")


def run(op: Op[T], execute: Callable[[Stmt], Rows]) -> T:
    """Drive an operation with a blocking `execute`."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as done:
        return done.value


async def arun(op: Op[T], execute: Callable[[Stmt], Awaitable[Rows]]) -> T:
    """Drive an operation with an awaitable `execute`."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(await execute(stmt))
    except StopIteration as done:
        return done.value


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
        return (Stmt(first.sql, first.params[0], fetch=False) if first.many else first), done.value
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
        return done.value


def select(sql: str, params: Sequence[Any]) -> Op[Rows]:
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
        yield Stmt(d.insert_version, (version + 1,), fetch=False)
    return latest


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
    if t.checkpoint_id:
        rows = yield Stmt(d.select_by_id, (t.thread_id, t.checkpoint_ns, t.checkpoint_id, known))
    else:
        rows = yield Stmt(d.select_latest, (t.thread_id, t.checkpoint_ns, known))
    if not rows:
        return None
    with gc_paused():  # a long thread's state is many objects the caller keeps
        got = records.to_tuple(
            rows[0], codec, config if t.checkpoint_id else None, values=values, texts=texts
        )
    if values is not None:
        caches.keep_decoded(t.thread_id, values)  # type: ignore[union-attr]
    return got


_EVERY_CHECKPOINT = ListWhere(None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class ListPlan:
    """The statement behind `list`, and what the engine cannot filter on.

    Metadata keys that JSON cannot hold as object keys (NUL, lone surrogates) or that the
    codec reserves are matched here, after decoding; `limit` then applies here too.
    """

    sql: str
    params: list[Any]
    residual: dict[str, Any]
    limit: int | None
    #: what `sql` selects and its SQL limit, to read it a page at a time instead
    where: ListWhere = _EVERY_CHECKPOINT
    sql_limit: int | None = None

    def keeps(self, metadata: dict[str, Any]) -> bool:
        return all(k in metadata and metadata[k] == v for k, v in self.residual.items())


class ListPages:
    """The rows of a `list` a chunk at a time, each chunk (with the stored values it
    needs) read by its own short operation, resuming after the previous chunk's last row.

    For engines where a statement left open between chunks keeps its read snapshot: on
    SQLite, the connection could not write again until the caller finished iterating.
    """

    def __init__(self, d: Dialect, plan: ListPlan, reader: ListReader, size: int) -> None:
        self.d, self.plan, self.reader, self.size = d, plan, reader, size
        self._left = plan.sql_limit  # rows the SQL may still return (None: no limit)
        self._after: tuple[str, str, str] | None = None
        self._last = False

    def next(self) -> Op[Rows] | None:
        """The operation reading the next chunk, or None after the last."""
        return None if self._last or self._left == 0 else self._read()

    def _read(self) -> Op[Rows]:
        size = self.size if self._left is None else min(self.size, self._left)
        rows = yield Stmt(*self.d.list_page(self.plan.where, size, self._after))
        if (fetch := self.reader.fetch(rows)) is not None:
            yield from fetch
        self._last = len(rows) < size
        if self._left is not None:
            self._left -= len(rows)
        if rows:
            self._after = (rows[-1][2], rows[-1][0], rows[-1][1])
        return rows


def _sql_filterable(key: str) -> bool:
    """Whether stored metadata keeps `key` as a plain JSON object key the SQL can match."""
    return key not in (TAG, MAP_PAIRS, MAP_ORDER) and "\x00" not in key and _utf8(key)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def list_plan(
    d: Dialect,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> ListPlan:
    """Plan `list`; the savers stream the rows through `records.to_tuple` and `keeps`."""
    thread_id = ns = cid = None
    if config is not None:
        t = target(config)
        thread_id, cid = t.thread_id, t.checkpoint_id
        ns = config["configurable"].get("checkpoint_ns")
    # LangGraph's replay passes a `before` that holds only a checkpoint id: the thread is
    # `config`'s, and so is the namespace.
    before_id = None
    if before is not None:
        before_id = checkpoint_id_of(configurable(before, "before"))
        if before_id is None:
            raise ConfigError("before['configurable']['checkpoint_id'] is required")
    if filter is not None and (
        not isinstance(filter, dict) or not all(isinstance(k, str) for k in filter)
    ):
        raise ConfigError(f"filter must be a dict with str keys, got {filter!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise ConfigError(f"limit must be an int, got {limit!r}")
    if limit is not None and limit < 0:  # as in LangGraph's savers: nothing, not everything
        limit = 0
    in_sql = {k: v for k, v in (filter or {}).items() if _sql_filterable(k)}
    residual = {k: v for k, v in (filter or {}).items() if k not in in_sql}
    sql_limit = None if residual else limit
    where = ListWhere(thread_id, ns, cid, before_id, in_sql or None)
    sql, params = d.list_query(where, sql_limit)
    return ListPlan(sql, params, residual, limit if residual else None, where, sql_limit)


# -- writes -----------------------------------------------------------------------------


def put(
    d: Dialect,
    codec: JsonCodec,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> Op[RunnableConfig]:
    """Store a checkpoint and the values its snapshot refers to; `config`'s checkpoint id
    becomes its parent. One statement on engines whose `upsert_checkpoint` inserts the
    values too (a data-modifying CTE), two otherwise."""
    t = target(config)
    record = records.checkpoint_record(t, config, checkpoint, metadata, codec)
    if d.insert_values and record.values:
        yield Stmt(d.insert_values, record.value_rows(), many=True, fetch=False)
    touch = thread_model.touch_values(t, config, checkpoint, metadata, codec.native)
    yield from _with_thread(d, (d.upsert_checkpoint, d.put_params(record)), touch)
    return Target(t.thread_id, t.checkpoint_ns, checkpoint["id"]).config()


def _with_thread(d: Dialect, write: tuple[str, Sequence[Any]], touch: Sequence[Any]) -> Op[None]:
    """`write` and the upsert of its thread's row, in one statement where the engine can:
    the thread list never lags the checkpoints and costs no round trip."""
    for sql, params in d.together(write, (d.threads.touch, touch)):
        yield Stmt(sql, params, fetch=False)


def put_writes(
    d: Dialect,
    codec: JsonCodec,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> Op[None]:
    """Store a task's writes against the checkpoint `config` names."""
    t = target(config, need_id=True)
    if writes:
        row = records.write_row(t, writes, task_id, task_path, codec)
        noted = thread_model.state_values(t, config, [channel for channel, _ in writes])
        if not noted:
            yield Stmt(d.upsert_writes, row, fetch=False)
            return
        # interrupts and errors: in the same statement where the engine can
        for sql, params in d.together((d.upsert_writes, row), (d.threads.note_state, noted)):
            yield Stmt(sql, params, fetch=False)


def lock_threads(d: Dialect, thread_ids: Iterable[str], *, shared: bool = False) -> Op[None]:
    """Keep puts (or, `shared`, sweeps) of these threads out until the transaction ends."""
    sql = d.share_threads if shared else d.lock_threads
    if sql:
        yield Stmt(sql, (d.array(sorted(set(thread_ids))),), fetch=False)


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
    yield Stmt(d.threads.delete, (tid,), fetch=False)
    yield Stmt(d.delete_thread_writes, (tid,), fetch=False)
    yield Stmt(d.delete_thread_checkpoints, (tid,), fetch=False)
    yield Stmt(d.delete_thread_values, (tid,), fetch=False)


def delete_for_runs(d: Dialect, run_ids: Sequence[str]) -> Op[None]:
    """Delete the checkpoints (and their writes) that the given runs created, and the
    values only they referred to."""
    ids = [check_id(str(r), "run_id") for r in run_ids]
    if ids:
        yield Stmt(d.delete_run_writes, (d.array(ids),), fetch=False)
        tids = {tid for (tid,) in (yield Stmt(d.delete_run_checkpoints, (d.array(ids),)))}
        yield from sweep_values(d, tids)
        yield from refresh_threads(d, tids)


def refresh_threads(d: Dialect, thread_ids: Iterable[str]) -> Op[None]:
    """Recompute each thread's latest checkpoint and run state from what is stored: for
    changes to its checkpoints other than `put` (deletions, copies, forks)."""
    for tid in sorted(set(thread_ids)):
        for sql in d.threads.refresh:
            yield Stmt(sql, (tid,), fetch=False)


def copy_thread(d: Dialect, source_thread_id: str, target_thread_id: str) -> Op[None]:
    """Copy every checkpoint and write of a thread, parent links included, and the values
    they refer to, server-side; and its row (owner, title, metadata) unless the target has one."""
    src, dst = thread_id_of(source_thread_id), thread_id_of(target_thread_id)
    if src == dst:
        raise ConfigError("copy_thread needs two different thread ids")
    yield from lock_threads(d, [src, dst], shared=True)
    names = {"target": dst, "source": src}
    first, *rest = d.copy_thread  # the row joins the first where the engine can
    for sql, params in d.together((first, names), (d.threads.copy, (dst, src))):
        yield Stmt(sql, params, fetch=False)
    for sql in rest:
        yield Stmt(sql, names, fetch=False)
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
            yield Stmt(d.delete_thread_writes, (tid,), fetch=False)
            yield Stmt(d.delete_thread_checkpoints, (tid,), fetch=False)
            yield Stmt(d.delete_thread_values, (tid,), fetch=False)
            yield from refresh_threads(d, [tid])
            continue
        for ns, head, counters in (yield Stmt(d.select_heads, (tid,))):
            keep = [head, *(yield from delta_ancestors(d, tid, ns, head, counters))]
            yield Stmt(d.delete_ns_writes_except, (tid, ns, d.array(keep)), fetch=False)
            yield Stmt(d.delete_ns_checkpoints_except, (tid, ns, d.array(keep)), fetch=False)
        yield Stmt(d.sweep_values, {"thread_id": tid}, fetch=False)


def delta_ancestors(d: Dialect, tid: str, ns: str, ts: str, counters: Any) -> Op[list[str]]:
    """The ancestors checkpoint `ts` needs to rebuild its `DeltaChannel`s: back to the
    nearest one holding a snapshot of each channel its delta `counters` (JSON) name."""
    pending = (
        set(decode_plain(records.load(counters), allowed_modules=None) or ()) if counters else set()
    )
    keep: list[str] = []
    if pending:
        chain = yield Stmt(d.select_chain, (tid, ns, ts))
        for ancestor, _parent, present in chain[1:]:
            keep.append(ancestor)
            pending -= set(records.load(present) or ())
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
    head = t.checkpoint_id
    if head is None:
        rows = yield Stmt(d.select_head, (t.thread_id, t.checkpoint_ns))
        if not rows:
            return {ch: {"writes": []} for ch in channels}
        head = rows[0][0]
    chain = yield Stmt(d.select_chain, (t.thread_id, t.checkpoint_ns, head))
    remaining = set(channels)
    visited: dict[str, list[str]] = {ch: [] for ch in channels}  # newest first
    seed_at: dict[str, str] = {}
    for ts, _parent, present in chain[1:]:
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
        rows = yield Stmt(d.select_chain_writes, (t.thread_id, t.checkpoint_ns, d.array(walked)))
        for ts, task_id, task_path, entries in rows:
            tasks.setdefault(ts, []).append([task_id, task_path, records.load(entries)])
    seeds: dict[str, Any] = {}
    if seed_at:
        seed_ids = d.array(sorted(set(seed_at.values())))
        rows = yield Stmt(d.select_seeds, (t.thread_id, t.checkpoint_ns, seed_ids))
        values = {ts: records.load(body)["channel_values"] for ts, body, _ in rows}
        texts = records.ValueTexts()
        cache = ValueCache(shared=False, raw=texts)
        refs = {r for _, _, refs in rows for r in records.load(refs) or ()}
        yield from load_values(d, {t.thread_id: texts}, {(t.thread_id, r) for r in refs})
        interned = {ts for ts, _, refs in rows if refs is not None}
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


def reference_problems(d: Dialect, thread_id: str | None = None) -> Op[list[str]]:
    """Check stored references (of one thread, or all): every snapshot's and value's
    `refs` matches its JSON, every value referred to exists, every value is referred to.
    Returns the problems found, as text; reads everything, so it is for tests and doctors.
    """
    rows = yield Stmt(d.select_references, {"thread_id": thread_id})
    roots: dict[str, set[str]] = {}
    edges: dict[str, dict[str, list[str]]] = {}
    problems = []
    for kind, tid, key, doc, refs in rows:
        what = f"{'checkpoint' if kind == 'c' else 'value'} {tid}/{key}"
        try:
            declared = sorted(set(records.load_refs(refs)))
            found = sorted(set(refs_in(records.load(doc))))
        except DecodeError as exc:
            problems.append(f"{what}: {exc}")
            declared = found = []
        if declared != found:
            problems.append(f"{what}: refs {declared} but its JSON refers to {found}")
        if kind == "c":
            roots.setdefault(tid, set()).update(found)
        else:
            edges.setdefault(tid, {})[key] = found
    for tid in sorted(roots.keys() | edges.keys()):
        values = edges.get(tid, {})
        live, todo = set(), list(roots.get(tid, ()))
        while todo:
            h = todo.pop()
            if h not in live:
                live.add(h)
                todo.extend(values.get(h, ()))
        problems += [
            f"thread {tid}: value {h} is referred to but missing"
            for h in sorted(live - values.keys())
        ]
        problems += [
            f"thread {tid}: value {h} is stored but unused" for h in sorted(values.keys() - live)
        ]
    return problems
