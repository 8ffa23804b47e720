"""Reading interned values: the caches reads keep them in, and the statements that load
them. Sans-I/O like `ops`: loaders are operations yielding statements."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from ..codec import ValueCache
from .dialect import Dialect
from .intern import Remembered
from .records import ValueTexts
from .stmt import Op, Stmt

#: Most reads of a thread that decode alone after its kept values were dropped unused.
MAX_BACKOFF = 64


class ChannelMemo:
    """What each channel of a thread namespace was interned to by its last put, with its
    version and the value object itself: a later put whose channel holds the same object
    at the same version takes it as it was instead of encoding and interning it again.
    LangGraph moves a channel's version whenever its value changes, and its in-memory
    saver and the official PostgreSQL one store a channel's value once per version (a
    channel a put's `new_versions` leaves out is not stored again); the object must be
    the same too, so that a fork whose channel came to the same version number with
    another value is interned anew. The values a reused channel needs are stored again
    all the same (a deletion may have removed them since). Kept for the `threads`
    namespaces put last, holding `size` bytes of values at most (and their objects
    alive: few namespaces)."""

    def __init__(self, threads: int = 32, size: int = 8 << 20) -> None:
        self.threads, self.size = threads, size
        self._kept: OrderedDict[tuple[str, str], tuple[dict[str, Remembered], int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, thread_id: str, checkpoint_ns: str) -> Mapping[str, Remembered]:
        """The channels of a namespace remembered (channel -> (version, value, unit))."""
        with self._lock:
            kept = self._kept.get((thread_id, checkpoint_ns))
            return {} if kept is None else kept[0]

    def keep(self, thread_id: str, checkpoint_ns: str, channels: dict[str, Remembered]) -> None:
        """Remember a put's channels, in place of those of the namespace's last put."""
        size = sum(channel.unit.size for channel in channels.values())
        with self._lock:
            old = self._kept.pop((thread_id, checkpoint_ns), None)
            if old is not None:
                self._total -= old[1]
            if size > self.size:
                return
            self._kept[(thread_id, checkpoint_ns)] = (channels, size)
            self._total += size
            while len(self._kept) > self.threads or self._total > self.size:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._total -= dropped


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
        self.channels = ChannelMemo()  # for puts
        self._texts: OrderedDict[str, ValueTexts] = OrderedDict()
        # thread -> (its decoded values, the size of their texts when kept)
        self._decoded: OrderedDict[str, tuple[ValueCache, int]] = OrderedDict()
        self._decoded_chars = 0  # the sizes in `_decoded`
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
                self._drop_decoded(tid)
            return texts

    def add_written(self, thread_id: str, written: Iterable[tuple[str, str]]) -> None:
        """The values a put stored (hash, JSON text), added to the texts of a thread kept
        here, so that its next read fetches none of them (a graph reads its thread, then
        puts). Nothing for a thread not kept: a write does not make a thread read. Like
        the texts a read fetches, they are the closure of a snapshot, hashes naming their
        content: whether the put's transaction then commits or not, they are right."""
        with self._lock:
            texts = self._texts.get(thread_id)
            if texts is None:
                return
            for h, text in written:
                texts.add(h, text)
            self._handed.add(thread_id)  # its size is counted again at the next `get`

    def take_decoded(self, thread_id: str, texts: ValueTexts) -> ValueCache | None:
        """The values of a thread that its reads decoded (from `texts`, its texts), for one
        read to use alone (a cache holds the state of the snapshot it decodes) and hand
        back with `keep_decoded`; a new cache if another read holds it or none is kept.
        A read copies what it finds there instead of decoding it again (decoding a message
        costs several times more than copying it).

        None when the read should decode for itself alone, as a first read does. Keeping
        decoded values means planning their copies, which costs about as much again as
        decoding them and pays only if the thread is read again before they are dropped:
        so the first read that finds the thread's texts here decodes alone, and when kept
        values were dropped unused (more threads read in turn than are kept), the next
        `backoff` reads of the thread do, doubling each time up to `MAX_BACKOFF` (and
        back to 1 once kept values are used), which leaves the room to threads that use it.
        """
        with self._lock:
            cache = self._drop_decoded(thread_id)
            if cache is not None and cache.raw is texts:
                texts.kept, texts.backoff = False, 1
                return cache
            if texts.kept:  # kept by the last read, dropped before this one
                texts.kept = False
                texts.alone = texts.backoff
                texts.backoff = min(2 * texts.backoff, MAX_BACKOFF)
            if texts.alone:
                texts.alone -= 1
                return None
        return ValueCache(raw=texts)

    def keep_decoded(self, thread_id: str, cache: ValueCache) -> None:
        """Keep a thread's decoded values for its next read: for the `decoded_threads`
        threads read last, whose texts hold a quarter of `chars` at most."""
        texts: ValueTexts = cache.raw  # type: ignore[assignment]
        size = texts.size
        with self._lock:
            texts.kept = True
            self._drop_decoded(thread_id)
            self._decoded[thread_id] = (cache, size)
            self._decoded_chars += size
            while len(self._decoded) > 1 and (
                len(self._decoded) > self.decoded_threads or self._decoded_chars > self.chars // 4
            ):
                self._drop_decoded(next(iter(self._decoded)))

    def _drop_decoded(self, thread_id: str) -> ValueCache | None:
        """Forget a thread's decoded values (the lock held); return them."""
        kept = self._decoded.pop(thread_id, None)
        if kept is None:
            return None
        self._decoded_chars -= kept[1]
        return kept[0]


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
