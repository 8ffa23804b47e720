"""`import_official`: copy a database of the official LangGraph savers into ours.

The source (read with our own SQL, see `official_read`) is copied thread by thread, each
thread's checkpoints in the order they were made, through the core operations of our
saver's `put_writes` and `put`, many checkpoints per transaction (`batch.BatchWriter`):
threads are registered (owner and title as for any put) and values interned. A
checkpoint's writes go before it, in its transaction, so a checkpoint in the target has
all its writes: a run stopped at any point (Ctrl-C, kill -9) resumes where it stopped,
and a second run copies nothing. Progress counts the checkpoints stored, not queued.
Then it verifies: counts, `check_references` on the target, and a sample of checkpoints
read back equal to the source's.

Writes whose checkpoint is not in the source (left by a run stopped before saving it)
are not copied: no read returns them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from ..core.threads import held
from ..errors import ConfigError, DecodeError, NotFoundError, SchemaVersionError
from ..opener import from_url
from ..saver import SyncSaver
from ..urls import sqlite_path
from .batch import MAX_ITEMS, BatchWriter, Item, checkpoint_ops
from .official_decode import Decoder, context
from .official_read import RawCheckpoint, TableSource, ThreadSize, open_source
from .official_verify import verify
from .report import Progress, ProgressCallback, TransferReport

__all__ = ["import_official"]


def import_official(
    source_url: str,
    target_url: str,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    verify_samples: int = 20,
    progress: ProgressCallback | None = None,
    pickle_key: bytes | None = None,
) -> TransferReport:
    """Import the database of an official saver at `source_url` into ours at `target_url`.

    `dry_run` reads and decodes everything and counts what would be copied, writing
    nothing. `batch_size` checkpoints are read at a time, and stored per transaction (at
    most `batch.MAX_ITEMS`, or about `batch.MAX_BYTES`); `verify_samples` checkpoints are
    read back and compared. Pickled values are refused (a problem naming the thread and
    checkpoint; the thread's other checkpoints are left out) unless `pickle_key` (bytes,
    16 or more) opts in: see `official_decode.PICKLE_REFUSED`. A value of a class the
    serializer's msgpack policy does not allow is refused the same way.
    """
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("verify_samples", verify_samples, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{name} must be an int >= {least}, got {value!r}")
    if source_url == target_url:
        raise ConfigError("the source and the target are the same database")
    started = time.monotonic()
    decoder = Decoder(pickle_key)
    report = TransferReport(dry_run=dry_run)
    for kind in ("threads", "checkpoints", "writes"):
        report.add(kind)
    source = open_source(source_url)
    try:
        with _open_target(target_url, dry_run, pickle_key) as saver:
            run = _Import(source, saver, decoder, report, progress)
            run.copy(batch_size)
            if saver is not None and not dry_run:
                verify(source, saver, run.decoder, run.threads, verify_samples, report, progress)
    finally:
        source.close()
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def _open_target(url: str, dry_run: bool, pickle_key: bytes | None) -> Iterator[Any]:
    """Our saver at `url`; in a dry run, None when it has no database or schema yet
    (nothing is created)."""
    options: dict[str, Any] = {}
    if pickle_key is not None:
        options = {"serde": JsonPlusSerializer(pickle_fallback=True), "pickle_key": pickle_key}
    if dry_run:
        options["auto_setup"] = False
        if url.lower().startswith("sqlite:"):
            path = sqlite_path(url)
            if path == ":memory:" or not Path(path).exists():
                yield None
                return
    with from_url(url, **options) as opened:
        saver: SyncSaver | None = opened
        if dry_run:
            try:
                opened.get_tuple({"configurable": {"thread_id": "import-official-probe"}})
            except SchemaVersionError as exc:
                if "has no langgraph-store-dual schema" not in str(exc):
                    raise
                saver = None
        yield saver


@dataclass(frozen=True, slots=True)
class _Tag:
    """What a queued checkpoint is: its thread, its source row, its place in the run."""

    thread_id: str
    raw: RawCheckpoint
    position: int  # source checkpoints handled up to and with it


class _Import:
    """One copy pass over the source."""

    def __init__(
        self,
        source: TableSource,
        saver: Any,
        decoder: Decoder,
        report: TransferReport,
        progress: ProgressCallback | None,
    ) -> None:
        self.source, self.saver, self.decoder = source, saver, decoder
        self.report, self.progress = report, progress
        self.write = saver is not None and not report.dry_run
        self.threads: list[ThreadSize] = []
        self.total = 0
        self.handled = 0  # source checkpoints copied, skipped or refused so far
        self.told = -1
        self.copied = False
        self.writer: BatchWriter | None = None

    def _tell(self, phase: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(Progress(phase, done, total))

    def _progress(self) -> None:
        """Report the checkpoints handled whose copies are stored (not those queued)."""
        pending = self.writer.pending if self.writer is not None else []
        done = pending[0].tag.position - 1 if pending else self.handled
        if done != self.told:
            self.told = done
            self._tell("checkpoints", done, self.total)

    def present(self, thread_id: str) -> tuple[int, int]:
        """(checkpoints, writes) the target holds for a thread."""
        if self.saver is None:
            return 0, 0
        try:  # not threads.stats, which also counts bytes (per channel too)
            counts: tuple[int, int] = self.saver.run_op(held(self.saver.dialect, thread_id))
        except NotFoundError:
            return 0, 0
        except ConfigError as exc:  # e.g. an id our savers cannot store
            raise ConfigError(f"thread {thread_id!r}: {exc}") from exc
        return counts

    def copy(self, batch_size: int) -> None:
        self.threads = self.source.threads()
        self.total = sum(t.checkpoints for t in self.threads)
        self._progress()
        with ExitStack() as stack:
            if self.write:
                self.writer = stack.enter_context(
                    BatchWriter(
                        self.saver,
                        max_items=min(batch_size, MAX_ITEMS),
                        stored=self._stored,
                        failed=self._failed,
                    )
                )
            for size in self.threads:
                self._each_thread(size, batch_size)
        self._progress()

    def _each_thread(self, size: ThreadSize, batch_size: int) -> None:
        self.copied = False  # in the current thread
        end = self.handled + size.checkpoints
        try:
            self._thread(size, batch_size)
        except (DecodeError, ConfigError) as exc:
            self.report.problems.append(f"{exc} (the thread's later checkpoints were not copied)")
            self.report.add("threads", copied=int(self.copied))
        self.handled = end
        self._progress()

    def _thread(self, size: ThreadSize, batch_size: int) -> None:
        """Copy the checkpoints of a thread that the target lacks."""
        tid = size.thread_id
        held = self.present(tid)
        if held == (size.checkpoints, size.writes):
            self.report.add("threads", skipped=1)
            self.report.add("checkpoints", skipped=size.checkpoints)
            self.report.add("writes", skipped=size.writes)
            return
        existing: set[tuple[str, str]] = set()
        if held[0]:  # copied in part by a run that stopped
            existing = {
                (
                    t.config["configurable"]["checkpoint_ns"],
                    t.config["configurable"]["checkpoint_id"],
                )
                for t in self.saver.list({"configurable": {"thread_id": tid}})
            }
        after: tuple[str, str] | None = None
        while batch := self.source.batch(tid, after, batch_size):
            for raw in batch:
                self.handled += 1
                if (raw.checkpoint_ns, raw.checkpoint_id) in existing:
                    self.report.add("checkpoints", skipped=1)
                    self.report.add("writes", skipped=len(raw.writes))
                elif not self._checkpoint(tid, raw):  # refused by the database: _failed
                    self.report.add("threads", copied=int(self.copied))
                    return
                else:
                    self.copied = True
            after = (batch[-1].checkpoint_id, batch[-1].checkpoint_ns)
            self._progress()
        self.report.add("threads", copied=int(self.copied), skipped=int(not self.copied))

    def _checkpoint(self, tid: str, raw: RawCheckpoint) -> bool:
        """Copy one checkpoint (queue it: its writes first, then the checkpoint itself);
        False if a checkpoint of its thread was refused before."""
        checkpoint = self.decoder.checkpoint(tid, raw)
        tasks = self.decoder.writes(tid, raw)
        if self.writer is None:
            self.report.add("checkpoints", copied=1)
            self.report.add("writes", copied=len(raw.writes))
            return True
        at = {"thread_id": tid, "checkpoint_ns": raw.checkpoint_ns}
        own = {"configurable": {**at, "checkpoint_id": raw.checkpoint_id}}
        parent = {"configurable": {**at, "checkpoint_id": raw.parent_id} if raw.parent_id else at}
        made = checkpoint_ops(
            self.saver, own, parent, checkpoint, raw.metadata, ((*t, w) for t, w in tasks)
        )
        item = Item(tid, made, _Tag(tid, raw, self.handled))
        with context(tid, raw, "storing it"):
            return self.writer.add(item)

    def _stored(self, items: list[Item]) -> None:
        self.report.add("checkpoints", copied=len(items))
        self.report.add("writes", copied=sum(len(item.tag.raw.writes) for item in items))
        self._progress()

    def _failed(self, item: Item, exc: Exception) -> None:
        """A checkpoint the database refused (run alone after its batch failed): a
        problem naming it, as a refused value is, if it is one; else the run stops."""
        tag: _Tag = item.tag
        try:
            with context(tag.thread_id, tag.raw, "storing it"):
                raise exc
        except (DecodeError, ConfigError) as named:
            self.report.problems.append(f"{named} (the thread's later checkpoints were not copied)")
