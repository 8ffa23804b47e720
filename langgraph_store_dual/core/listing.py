"""`list`: its plan (the statement, and what only Python can filter), the reader turning
its rows into CheckpointTuples with the values they refer to, and the chunked reading
for engines that cannot leave a statement open. Sans-I/O like `ops`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from ..codec import MAP_ORDER, MAP_PAIRS, TAG, JsonCodec, ValueCache
from ..errors import ConfigError, MissingValueError
from ..fresh import gc_paused
from . import records
from .config import checkpoint_id_of, configurable, target
from .dialect import Dialect, ListWhere
from .records import ValueTexts
from .rows import CHECKPOINT_NS, REFS, THREAD_ID, THREAD_TS
from .stmt import Op, Params, Rows, Stmt
from .values import ValueCaches, load_values

_EVERY_CHECKPOINT = ListWhere(None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class ListPlan:
    """The statement behind `list`, and what the engine cannot filter on.

    Metadata keys that JSON cannot hold as object keys (NUL, lone surrogates) or that the
    codec reserves are matched here, after decoding; `limit` then applies here too.
    """

    sql: str
    params: Params
    residual: dict[str, Any]
    limit: int | None
    #: what `sql` selects and its SQL limit, to read it a page at a time instead
    where: ListWhere = _EVERY_CHECKPOINT
    sql_limit: int | None = None

    def keeps(self, metadata: Mapping[str, Any]) -> bool:
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
            last = rows[-1]
            self._after = (last[THREAD_TS], last[THREAD_ID], last[CHECKPOINT_NS])
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


class ListReader:
    """`list` rows -> CheckpointTuples, with the values their snapshots refer to.

    The savers stream rows in chunks; `fetch(chunk)` is the operation that loads the
    values the chunk needs and that `caches` lacks. Within one `list`, each value is
    decoded once (for the last `threads` threads seen: more than a chunk can hold) and
    every use gets a copy.
    """

    def __init__(
        self, d: Dialect, codec: JsonCodec, plan: ListPlan, caches: ValueCaches, threads: int = 128
    ) -> None:
        self.d, self.codec, self.plan, self.caches = d, codec, plan, caches
        self.threads = threads
        self._seen: OrderedDict[str, tuple[ValueTexts, ValueCache]] = OrderedDict()
        self.taken = 0

    @property
    def done(self) -> bool:
        return self.plan.limit is not None and self.taken >= self.plan.limit

    def _thread(self, thread_id: str) -> tuple[ValueTexts, ValueCache]:
        """A thread's texts (held here even if `caches` drops them) and decoded values."""
        got = self._seen.pop(thread_id, None)
        if got is None:
            texts = self.caches.get(thread_id)
            got = (texts, ValueCache(raw=texts, flatten=True))
            while len(self._seen) >= self.threads:
                self._seen.popitem(last=False)
        self._seen[thread_id] = got
        return got

    def fetch(self, rows: Sequence[Sequence[Any]]) -> Op[None] | None:
        """The operation loading the values `rows` need, or None if they are all here."""
        texts = {r[THREAD_ID]: self._thread(r[THREAD_ID])[0] for r in rows if r[REFS] is not None}
        wanted = {
            (r[THREAD_ID], h)
            for r in rows
            if r[REFS] is not None
            for h in records.load_refs(r[REFS])
            if h not in texts[r[THREAD_ID]]
        }
        return load_values(self.d, texts, wanted) if wanted else None

    def tuples(self, rows: Sequence[Sequence[Any]]) -> list[CheckpointTuple]:
        """The tuples of `rows` that the plan keeps, up to its limit."""
        out, vanished = self.streamed(rows)
        if vanished is not None:
            raise vanished.error
        return out

    def streamed(
        self, rows: Sequence[Sequence[Any]]
    ) -> tuple[list[CheckpointTuple], Vanished | None]:
        """`tuples` for rows streamed from a snapshot older than the values just fetched:
        rows whose values are gone are left out, with the operation that checks their
        checkpoints were deleted meanwhile (retention, a delete) and raises if not."""
        out: list[CheckpointTuple] = []
        vanished: Vanished | None = None
        with gc_paused():
            for row in rows:
                if self.done:
                    break
                cache = self._thread(row[THREAD_ID])[1] if row[REFS] is not None else None
                try:
                    item = records.to_tuple(row, self.codec, values=cache)
                except MissingValueError as exc:
                    vanished = vanished or Vanished(self.d, exc)
                    vanished.rows.append(row)
                    continue
                if self.plan.keeps(item.metadata):
                    self.taken += 1
                    out.append(item)
        return out, vanished


class Vanished:
    """Rows that refer to values no longer stored, and the check that their checkpoints
    are gone too (a read racing a deletion), else `error`: the database lost values."""

    def __init__(self, d: Dialect, error: MissingValueError) -> None:
        self.d, self.error = d, error
        self.rows: list[Sequence[Any]] = []

    def check(self) -> Op[None]:
        for row in self.rows:
            params = {
                "thread_id": row[THREAD_ID],
                "checkpoint_ns": row[CHECKPOINT_NS],
                "thread_ts": row[THREAD_TS],
                "known": self.d.array([]),
            }
            if (yield Stmt(self.d.select_by_id, params)):
                raise self.error
