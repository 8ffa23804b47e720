"""Reading interned values: the caches reads keep them in, and the statements that load
them. Sans-I/O like `ops`: loaders are operations yielding statements."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from ..codec import ValueCache
from .dialect import Dialect
from .records import ValueTexts
from .stmt import Op, Stmt


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
