"""Storing many checkpoints per transaction: the importers' writer.

An `Item` is one checkpoint's worth of core operations (`ops.put_writes` for each of its
tasks, then `ops.put`), given as factories. `BatchWriter.add` builds them and draws the
statements they yield before they need rows (all of them, for `put` and `put_writes`):
the encoding runs there, so a refused value (UnsafeTypeError, DecodeError, ConfigError)
is raised by `add`, for that item, before anything is queued. `flush` runs the queued
items in ONE write transaction through the saver's public `run_op`, each item's
operations in order, so a checkpoint stored is complete (its writes are in the same
transaction, before it) and a kill at any point leaves whole batches.

Why composing them is sound: none of their statements reads rows (all `fetch=False`), so
PostgreSQL sends a batch as one pipeline and each item's statements can be drawn before
the transaction; values are interned per thread with `ON CONFLICT DO NOTHING`, so one
stored earlier in the same transaction is kept, not read; thread rows are upserted by
each put as they are by `put` (on PostgreSQL a batch's threads share its `updated_at`,
the transaction's `now()`); the saver's `ValueCaches` are filled by reads only. The
transaction first takes the shared per-thread locks of all its threads, sorted (each put
takes its own again, already held): against sweeps, which take them exclusive in that
order, it cannot dead-lock. A batch the database refuses is run again item by item, each
in its own transaction, to store the others and hand the culprit to `failed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

from ..core import ops
from ..core.ops import Op, Rows, Stmt

#: Checkpoints stored per transaction, at most.
MAX_ITEMS = 200
#: Bytes of parameters per transaction, about (a batch closes when it passes them).
MAX_BYTES = 8 << 20

#: Builds one core operation (a fresh generator each call).
Factory = Callable[[], Op[Any]]


@dataclass(frozen=True, slots=True)
class Item:
    """One checkpoint's operations, stored in this order in one transaction; `group` is
    its thread id, `tag` is the caller's (handed back to `stored` and `failed`)."""

    group: str
    make: tuple[Factory, ...]
    tag: Any = None


def checkpoint_ops(
    saver: Any,
    own: Any,
    parent: Any,
    checkpoint: Any,
    metadata: Any,
    tasks: Iterable[tuple[str, str, Sequence[tuple[str, Any]]]],
) -> tuple[Factory, ...]:
    """The operations storing one checkpoint, built by the saver as its methods build them
    (its ttl settings included):
    `put_writes` of each task `(task_id, task_path, writes)` against `own` (the
    checkpoint's config), then `put` with `parent` (its parent's config)."""
    made: list[Factory] = [
        partial(saver.put_writes_op, own, writes, task_id, task_path)
        for task_id, task_path, writes in tasks
    ]
    versions = checkpoint.get("channel_versions") or {}
    made.append(partial(saver.put_op, parent, checkpoint, metadata, versions))
    return tuple(made)


class _Drawn:
    """An operation with the statements it yields before it needs rows drawn already."""

    __slots__ = ("drawn", "rest", "size")

    def __init__(self, op: Op[Any]) -> None:
        self.drawn: list[Stmt] = []
        self.rest: tuple[Op[Any], Stmt] | None = None
        try:
            stmt = next(op)
            while not stmt.fetch:  # its rows are ignored: an engine hands it []
                self.drawn.append(stmt)
                stmt = op.send([])
            self.rest = (op, stmt)
        except StopIteration:
            pass
        self.size = sum(_size(s.params) for s in self.drawn)

    def run(self) -> Op[None]:
        for stmt in self.drawn:
            yield stmt  # its rows ignored
        if self.rest is not None:
            op, stmt = self.rest
            try:
                while True:
                    rows: Rows = yield stmt
                    stmt = op.send(rows)
            except StopIteration:
                pass


def _size(params: Any) -> int:
    """Roughly the bytes a statement's parameters send."""
    if isinstance(params, (str, bytes)):
        return len(params)
    if isinstance(params, Mapping):
        return sum(_size(v) for v in params.values())
    if isinstance(params, Sequence):
        return sum(_size(v) for v in params)
    return 8


def _drawn(item: Item) -> list[_Drawn]:
    return [_Drawn(make()) for make in item.make]


class BatchWriter:
    """Stores items in batches of up to `max_items` checkpoints or about `max_bytes`.

    `stored(items)` is called after each commit with the items it stored, in order.
    `failed(item, exc)` is called when the database refuses an item run alone (after its
    batch failed); it may raise to stop (the default re-raises). The items of the same
    group that follow a failed one, in the batch and added later, are dropped: their
    parents would be missing. Use it as a context manager: leaving it flushes what is
    queued, also on an exception (unless a flush failed or the exception is not an
    `Exception`, e.g. KeyboardInterrupt).
    """

    def __init__(
        self,
        saver: Any,
        *,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
        stored: Callable[[list[Item]], None] | None = None,
        failed: Callable[[Item, Exception], None] | None = None,
    ) -> None:
        self.saver, self.max_items, self.max_bytes = saver, max(1, max_items), max_bytes
        self._stored, self._failed = stored, failed
        self._items: list[tuple[Item, list[_Drawn]]] = []
        self._bytes = 0
        self._after: list[Callable[[], None]] = []
        self._broken = False
        #: Groups with a failed item: their later items are dropped.
        self.failed_groups: set[str] = set()

    # -- queueing ----------------------------------------------------------------------
    def add(self, item: Item) -> bool:
        """Queue `item` (flushing first or after as the limits say); False if its group
        failed before. Raises what building its operations raises, queueing nothing."""
        if item.group in self.failed_groups:
            return False
        drawn = _drawn(item)
        size = sum(d.size for d in drawn)
        if self._items and self._bytes + size > self.max_bytes:
            self.flush()
        self._items.append((item, drawn))
        self._bytes += size
        if len(self._items) >= self.max_items or self._bytes >= self.max_bytes:
            self.flush()
        return True

    def after(self, callback: Callable[[], None]) -> None:
        """Call `callback` once everything queued so far is stored (now if nothing is)."""
        if self._items:
            self._after.append(callback)
        else:
            callback()

    @property
    def pending(self) -> list[Item]:
        """The items queued and not stored yet, in order."""
        return [item for item, _ in self._items]

    def holds(self, group: str) -> bool:
        """Whether an item of `group` is queued."""
        return any(item.group == group for item, _ in self._items)

    # -- storing -----------------------------------------------------------------------
    def flush(self) -> None:
        """Store the queued items: in one transaction, else one by one (see the class)."""
        batch, callbacks = self._items, self._after
        self._items, self._bytes, self._after = [], 0, []
        if batch:
            try:
                self._run([drawn for _, drawn in batch], [item.group for item, _ in batch])
            except Exception:
                self._one_by_one([item for item, _ in batch])
            else:
                self._tell([item for item, _ in batch])
        for callback in callbacks:
            callback()

    def _run(self, batch: list[list[_Drawn]], groups: list[str]) -> None:
        d = self.saver.dialect

        def op() -> Op[None]:
            yield from ops.lock_threads(d, groups, shared=True)
            for drawn in batch:
                for one in drawn:
                    yield from one.run()

        self.saver.run_op(op(), write=True)

    def _one_by_one(self, items: list[Item]) -> None:
        for item in items:
            if item.group in self.failed_groups:
                continue
            try:
                self._run([_drawn(item)], [item.group])
            except Exception as exc:
                self.failed_groups.add(item.group)
                try:
                    if self._failed is None:
                        raise
                    self._failed(item, exc)
                except BaseException:
                    self._broken = True
                    raise
            else:
                self._tell([item])

    def _tell(self, items: list[Item]) -> None:
        if self._stored is not None:
            self._stored(items)

    # -- context -----------------------------------------------------------------------
    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None or (issubclass(kind, Exception) and not self._broken):
            self.flush()
