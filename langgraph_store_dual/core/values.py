"""Reading interned values: the caches reads keep them in, and the statements that load
them. Sans-I/O like `ops`: loaders are operations yielding statements."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import CheckpointTuple

from ..codec import JsonCodec, ValueCache
from ..errors import MissingValueError
from ..fresh import gc_paused
from . import records
from .dialect import Dialect
from .records import ValueTexts
from .stmt import Op, Stmt

if TYPE_CHECKING:
    from .ops import ListPlan


class ValueCaches:
    """Stored values kept across reads as JSON text, per thread: a read of a thread then
    fetches only the values its snapshot adds to those it already has.

    Values never change (a hash names its content), so nothing here goes stale. Text, not
    decoded objects: those would make every full pass of Python's garbage collector
    longer; only the threads read again last keep theirs decoded too (`take_decoded`). The
    least recently read threads are dropped beyond `threads` threads or `chars` characters.
    """

    def __init__(
        self, threads: int = 256, chars: int = 8 << 20, decoded_threads: int = 128
    ) -> None:
        self.threads, self.chars, self.decoded_threads = threads, chars, decoded_threads
        self._texts: OrderedDict[str, ValueTexts] = OrderedDict()
        self._decoded: OrderedDict[str, ValueCache] = OrderedDict()
        self._lock = threading.Lock()
        self._counted: dict[str, int] = {}  # thread -> its size when last counted
        self._handed: set[str] = set()  # threads whose texts may have grown since
        self._total = 0

    def get(self, thread_id: str) -> ValueTexts:
        """The texts of a thread (made empty if new), now the most recently used."""
        with self._lock:
            for tid in self._handed:
                if (texts := self._texts.get(tid)) is not None:
                    self._total += texts.size - self._counted.get(tid, 0)
                    self._counted[tid] = texts.size
            self._handed.clear()
            texts = self._texts.pop(thread_id, None)
            if texts is None:
                texts = ValueTexts()
            self._texts[thread_id] = texts
            self._handed.add(thread_id)
            while len(self._texts) > 1 and (
                len(self._texts) > self.threads or self._total > self.chars
            ):
                tid, _ = self._texts.popitem(last=False)
                self._total -= self._counted.pop(tid, 0)
                self._decoded.pop(tid, None)
            return texts

    def take_decoded(self, thread_id: str, texts: ValueTexts) -> ValueCache:
        """The values of a thread that its reads decoded (from `texts`, its texts), for one
        read to use alone (a cache holds the state of the snapshot it decodes) and hand
        back with `keep_decoded`; a new cache if another read holds it or none is kept.
        A read copies what it finds there instead of decoding it again (decoding a message
        costs several times more than copying it)."""
        with self._lock:
            cache = self._decoded.pop(thread_id, None)
        return cache if cache is not None and cache.raw is texts else ValueCache(raw=texts)

    def keep_decoded(self, thread_id: str, cache: ValueCache) -> None:
        """Keep a thread's decoded values for its next read: for the `decoded_threads`
        threads read last, whose texts hold a quarter of `chars` at most."""
        with self._lock:
            self._decoded.pop(thread_id, None)
            self._decoded[thread_id] = cache
            size = sum(c.raw.size for c in self._decoded.values())  # type: ignore[union-attr]
            while len(self._decoded) > 1 and (
                len(self._decoded) > self.decoded_threads or size > self.chars // 4
            ):
                _, dropped = self._decoded.popitem(last=False)
                size -= dropped.raw.size  # type: ignore[union-attr]


def load_values(
    d: Dialect, texts: Mapping[str, ValueTexts], wanted: set[tuple[str, str]]
) -> Op[None]:
    """Fetch the values `(thread_id, hash)` into the threads' texts, with the values they
    refer to that the texts lack: one statement per thread. Missing values are left out
    (decoding a reference to one is a DecodeError)."""
    by_thread: dict[str, list[str]] = {}
    for tid, h in sorted(wanted):
        by_thread.setdefault(tid, []).append(h)
    for tid, hashes in by_thread.items():
        known = texts[tid]
        params = {"thread_id": tid, "hashes": d.array(hashes), "known": d.array(list(known))}
        for h, value in (yield Stmt(d.select_values, params)):
            known.add(h, value)


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
            got = (texts, ValueCache(raw=texts))
            while len(self._seen) >= self.threads:
                self._seen.popitem(last=False)
        self._seen[thread_id] = got
        return got

    def fetch(self, rows: Sequence[Sequence[Any]]) -> Op[None] | None:
        """The operation loading the values `rows` need, or None if they are all here."""
        texts = {row[0]: self._thread(row[0])[0] for row in rows if row[8] is not None}
        wanted = {
            (row[0], h)
            for row in rows
            if row[8] is not None
            for h in records.load(row[8])
            if h not in texts[row[0]]
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
                cache = self._thread(row[0])[1] if row[8] is not None else None
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
            params = (row[0], row[1], row[2], self.d.array([]))
            if (yield Stmt(self.d.select_by_id, params)):
                raise self.error
