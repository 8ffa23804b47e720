"""Export threads to JSON Lines and import them again, into either engine.

The format is described in `jsonl_format`. An export reads through the saver API (state
expanded, revived and encoded again with the codec), plus the stored index and task path
of each write. An import decodes and encodes each line completely before it stores
anything of it, then stores the checkpoint's writes and the checkpoint last, in the same
transaction (many checkpoints per transaction, `batch.BatchWriter`): a checkpoint that
exists is complete, and is skipped when the file is imported again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson

from ..core.thread_model import Thread
from ..errors import ConfigError, DecodeError, NotFoundError, SchemaVersionError
from ..opener import from_url
from ..registry import engine_for_url
from ..urls import sqlite_path
from . import jsonl_format as fmt
from . import sql
from .batch import BatchWriter, Item, checkpoint_ops
from .report import Progress, ProgressCallback, TableCount, TransferReport

Target = str | os.PathLike[str] | IO[str]

#: Checkpoints read per query of their writes, and between progress reports.
BATCH = 100


def require_source(url: str) -> None:
    """ConfigError if `url` names a SQLite file that does not exist (a source is never
    created)."""
    if engine_for_url(url).name == "sqlite":
        path = sqlite_path(url)
        if path == ":memory:" or not Path(path).is_file():
            raise ConfigError(f"the source database {path} does not exist")


@contextmanager
def _opened(target: Target, mode: str) -> Iterator[IO[str]]:
    """A text file to read (`"r"`) or write (`"w"`: via a `.partial` file renamed at the
    end, so a failed export leaves no file that looks whole, and deleted if it fails)."""
    if not isinstance(target, (str, os.PathLike)):
        yield target
        return
    path = Path(target)
    if mode == "r":
        try:
            f = path.open("r", encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"the export file {path} does not exist") from None
        with f:
            yield f
        return
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as f:
            yield f
        partial.replace(path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)  # cannot be completed: give its space back
        if isinstance(exc, OSError) and exc.filename is None:  # a write: name the file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _dump(f: IO[str], line: dict[str, Any]) -> None:
    f.write(orjson.dumps(line).decode())
    f.write("\n")


# -- export ------------------------------------------------------------------------------


def _threads(saver: Any, thread_ids: Sequence[str] | None, user_id: str | None) -> list[Thread]:
    """The rows of the threads to export; by id, not by the thread list's pages, which a
    thread written to meanwhile moves between."""
    if thread_ids is None:
        found = {tid: saver.threads.get(tid) for tid in sql.thread_ids(saver, user_id)}
        return [t for t in found.values() if t is not None]  # None: deleted meanwhile
    found = {tid: saver.threads.get(tid) for tid in dict.fromkeys(thread_ids)}
    if missing := [tid for tid, t in found.items() if t is None]:
        raise NotFoundError(f"no thread {', '.join(map(repr, missing))} in the database")
    return list(found.values())


def export_threads(
    url: str,
    out: Target,
    *,
    thread_ids: Sequence[str] | None = None,
    user_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Write the threads `thread_ids`, or a user's, or all (neither given) to `out` (a path
    or a text file) as JSON Lines: a header, then each thread's row and checkpoints."""
    if thread_ids is not None and user_id is not None:
        raise ConfigError("export either thread_ids or a user_id's threads, not both")
    if isinstance(thread_ids, str):
        raise ConfigError("thread_ids must be a sequence of thread ids, not one str")
    require_source(url)
    started, report = time.monotonic(), TransferReport()
    with from_url(url, auto_setup=False) as saver:
        threads = _threads(saver, thread_ids, user_id)
        with _opened(out, "w") as f:
            _dump(f, fmt.header(sql.engine(saver), sql.schema_version(saver)))
            for done, thread in enumerate(threads, 1):
                _dump(f, fmt.thread_line(thread))
                report.add("threads", copied=1)
                _export_checkpoints(saver, thread.thread_id, f, report, progress)
                if progress is not None:
                    progress(Progress("threads", done, len(threads)))
            _dump(f, fmt.end_line(report.copied))
    report.seconds = time.monotonic() - started
    return report


def _export_checkpoints(
    saver: Any,
    thread_id: str,
    f: IO[str],
    report: TransferReport,
    progress: ProgressCallback | None,
) -> None:
    items = saver.list({"configurable": {"thread_id": thread_id}})
    while batch := [item for _, item in zip(range(BATCH), items, strict=False)]:
        # read after the checkpoints: every write to them is there
        writes = sql.writes_of(
            saver, thread_id, (i.config["configurable"]["checkpoint_id"] for i in batch)
        )
        for item in batch:
            conf = item.config["configurable"]
            tasks = writes.get((conf.get("checkpoint_ns", ""), conf["checkpoint_id"]), [])
            line = fmt.checkpoint_line(item, tasks, saver.codec)
            _dump(f, line)
            report.add("checkpoints", copied=1)
            report.add("writes", copied=len(line["writes"]))
        if progress is not None:
            progress(Progress("checkpoints", report.copied["checkpoints"], None))


# -- import ------------------------------------------------------------------------------


class _Importer:
    """Stores the lines of one file, in order, on a saver, through `writer`."""

    def __init__(
        self,
        saver: Any,
        writer: BatchWriter,
        report: TransferReport,
        progress: ProgressCallback | None,
        version: int,
    ) -> None:
        self.saver, self.writer, self.report, self.progress = saver, writer, report, progress
        self.version = version  # the file's format version
        self.seen = dict.fromkeys(fmt.KINDS, 0)
        self.thread: dict[str, Any] | None = None
        self.created = False  # whether this import created the current thread
        self.known: set[tuple[str, str]] = set()
        self.line = 0  # the number of the line being stored

    def thread_row(self, line: dict[str, Any]) -> None:
        self.finish_thread()
        row = self.thread = fmt.check_thread(line, self.version)
        self.seen["threads"] += 1
        threads, tid = self.saver.threads, row["thread_id"]
        if self.writer.holds(tid):  # the thread came before in this file
            self.writer.flush()
        self.created = threads.get(tid) is None
        if self.created:
            threads.create(
                thread_id=tid,
                user_id=row["user_id"],
                title=row["title"],
                metadata=row["metadata"],
                ttl=row["ttl"],
                ttl_strategy=row["ttl_strategy"],
            )
            self.known = set()
        else:
            self.known = sql.checkpoint_ids(self.saver, tid)
        self.report.add("threads", copied=int(self.created), skipped=int(not self.created))

    def checkpoint(self, line: dict[str, Any]) -> None:
        cp = fmt.decode_checkpoint(line, self.saver.codec)
        calls = fmt.write_calls(cp.writes)
        if self.thread is None or cp.thread_id != self.thread["thread_id"]:
            raise DecodeError(
                f"a checkpoint of thread {cp.thread_id!r} not after that thread's row"
            )
        self.seen["checkpoints"] += 1
        self.seen["writes"] += len(cp.writes)
        if (cp.checkpoint_ns, cp.checkpoint_id) in self.known:
            self.report.add("checkpoints", skipped=1)
            self.report.add("writes", skipped=len(cp.writes))
        else:
            own, parent = cp.config(cp.checkpoint_id), cp.config(cp.parent_id)
            made = checkpoint_ops(self.saver, own, parent, cp.checkpoint, cp.metadata, calls)
            self.writer.add(Item(cp.thread_id, made, (self.line, self.seen["checkpoints"])))
            self.known.add((cp.checkpoint_ns, cp.checkpoint_id))
            self.report.add("checkpoints", copied=1)
            self.report.add("writes", copied=len(cp.writes))
        if self.seen["checkpoints"] % BATCH == 0:
            self.tell()

    def tell(self) -> None:
        """Report the checkpoints read whose copies are stored (not those queued)."""
        if self.progress is not None:
            pending = self.writer.pending
            done = pending[0].tag[1] - 1 if pending else self.seen["checkpoints"]
            self.progress(Progress("checkpoints", done, None))

    def finish_thread(self) -> None:
        """Give a thread this import created the title and status of its row (a put may
        have titled it), and check its run state, once its checkpoints are stored."""
        row, self.thread = self.thread, None
        if row is not None and self.created:
            self.writer.after(partial(self._finish, row))

    def _finish(self, row: dict[str, Any]) -> None:
        threads, tid = self.saver.threads, row["thread_id"]
        if threads.get(tid).title != row["title"]:
            threads.update(tid, title=row["title"])
        if row["status"] == "archived":
            threads.archive(tid)
        if (state := threads.get(tid).run_state) != row["run_state"]:
            self.report.problems.append(
                f"thread {tid!r}: run state {state!r} after the import, "
                f"{row['run_state']!r} in the file"
            )


def import_threads(
    url: str, source: Target, *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Store the threads of a JSON Lines export in the database `url` (created if it is a
    new SQLite file). Checkpoints already there are skipped; a malformed or tampered line
    raises DecodeError naming its line number, with nothing of it stored."""
    started, report = time.monotonic(), TransferReport()
    name = (
        getattr(source, "name", None)
        if not isinstance(source, (str, os.PathLike))
        else os.fspath(source)
    )
    where = f"{name or 'the export'} line"
    with _opened(source, "r") as f:
        try:  # the header, before the target is opened (or created)
            version = fmt.check_header(_parse(f.readline()))["version"]
        except (DecodeError, SchemaVersionError) as exc:
            raise type(exc)(f"{where} 1: {exc}") from exc
        with from_url(url) as saver, BatchWriter(saver, failed=partial(_refused, where)) as w:
            importer = _Importer(saver, w, report, progress, version)
            end: dict[str, int] | None = None
            number = 1
            for number, text in enumerate(f, 2):
                importer.line = number
                try:
                    end = _import_line(importer, text, end)
                except (DecodeError, ConfigError, SchemaVersionError) as exc:
                    raise type(exc)(f"{where} {number}: {exc}") from exc
    if end is None:
        raise DecodeError(f"{where} {number}: the file ends without its end line (cut short?)")
    report.counts = [
        TableCount(k, end[k], report.copied.get(k, 0) + report.skipped.get(k, 0)) for k in fmt.KINDS
    ]
    report.seconds = time.monotonic() - started
    return report


def _refused(where: str, item: Item, exc: Exception) -> None:
    """A checkpoint the database refused, run alone after its batch failed: the import
    stops there, as it would have without batches (the lines before it are stored)."""
    if isinstance(exc, (DecodeError, ConfigError, SchemaVersionError)):
        raise type(exc)(f"{where} {item.tag[0]}: {exc}") from exc
    raise exc


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON ({exc})") from None


def _import_line(
    importer: _Importer, text: str, end: dict[str, int] | None
) -> dict[str, int] | None:
    """Store one line after the header; the counts of the end line once it was read."""
    if not text.strip():
        return end
    line = _parse(text)
    if end is not None:
        raise DecodeError("a line after the end line")
    kind = line.get("kind") if isinstance(line, dict) else None
    if kind == "thread":
        importer.thread_row(line)
    elif kind == "checkpoint":
        importer.checkpoint(line)
    elif kind == "end":
        importer.finish_thread()
        return fmt.check_end(line, importer.seen)
    else:
        raise DecodeError(f"unknown line kind {kind!r} (expected thread, checkpoint or end)")
    return None
