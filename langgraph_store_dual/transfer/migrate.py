"""`migrate`: copy threads, checkpoints, writes and values from one database of ours to
another, any engine to any engine, and verify the copy.

How it copies: row by row, table by table, as stored (snapshots, writes with their task
paths, values by hash, thread rows with owner, title, metadata, status, run state and
times), so nothing is re-encoded and nothing LangGraph's `put` would drop is lost.

- The source is read in one read transaction: the copy is of one state of it. Rows
  written to the source after the migration began are not copied; run it again to copy
  them (a run copies only what the target lacks or holds older).
- Values go first, then writes, checkpoints and thread rows, each table in primary-key
  order, each batch one transaction on the target: a copy stopped anywhere (Ctrl-C,
  `kill -9`) leaves the target consistent, and running it again completes it.
- A row already on the target is kept when it is the same (so a second run copies
  nothing), replaced when the source's differs (a checkpoint or a task's writes) or, for
  thread rows, when the source's was updated later.
- At the end: rows per table on both sides, reference integrity of the target
  (`check_references`), and a sample of checkpoints and threads read back through both
  savers and compared. Any difference is in `report.problems` (`report.ok` is false).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, SchemaVersionError
from ..opener import from_url
from ..registry import engine_for_url
from ..urls import redact, sqlite_path
from .report import Progress, ProgressCallback, TableCount, TransferReport
from .rows import CHECKPOINTS, TABLES, THREADS, Rows, Table, rows_of
from .verify import Sample, compare_checkpoint, compare_thread


def migrate(
    source_url: str,
    target_url: str,
    *,
    dry_run: bool = False,
    threads_only: bool = False,
    since: datetime | None = None,
    batch_size: int = 500,
    verify_samples: int = 20,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Copy the database at `source_url` into the one at `target_url` (set up if needed).

    `dry_run`: write nothing, report what would be copied (`copied`) and what the target
    holds already (`skipped`). `threads_only`: the thread registry alone. `since`: only
    threads updated at or after that time (naive times are UTC), each with all its
    checkpoints, writes and values. `progress` is called after each batch with the phase
    ("values", "writes", "checkpoints", "threads", then "verify"), rows done and total.
    Both databases must be at this package's schema version (SchemaVersionError otherwise).
    """
    _check_options(batch_size, verify_samples, since)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    started = time.monotonic()
    report = TransferReport(dry_run=dry_run)
    tables = (THREADS,) if threads_only else TABLES
    with ExitStack() as stack:
        source = stack.enter_context(_open_source(source_url))
        src = _rows(stack, source)
        latest = len(source.dialect.migrations)
        _check_version(src.version(), latest, f"source {redact(source_url)}")
        target = stack.enter_context(_open_target(target_url, source_url, dry_run))
        tgt = None if target is None else _rows(stack, target)
        if tgt is not None:
            found = tgt.version()
            _check_version(found, latest, f"target {redact(target_url)}", dry_run)
            tgt = None if found is None else tgt  # a dry run to an empty database
        copy = _Copy(src, tgt, report, progress, dry_run)
        with src.snapshot():
            totals = {table.kind: src.count(table, since) for table in tables}
            for table in tables:
                copy.table(table, since, batch_size, totals[table.kind], verify_samples)
        if not dry_run and tgt is not None:
            for table in tables:
                target_rows = tgt.count(table, since)
                report.counts.append(TableCount(table.kind, totals[table.kind], target_rows))
            _verify(source, target, copy, report, progress, checks_references=not threads_only)
    report.seconds = time.monotonic() - started
    return report


def _check_options(batch_size: int, verify_samples: int, since: datetime | None) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if (
        isinstance(verify_samples, bool)
        or not isinstance(verify_samples, int)
        or verify_samples < 0
    ):
        raise ConfigError(f"verify_samples must be an int >= 0, got {verify_samples!r}")
    if since is not None and not isinstance(since, datetime):
        raise ConfigError(f"since must be a datetime, got {type(since).__name__}")


def _rows(stack: ExitStack, saver: Any) -> Rows:
    rows = rows_of(saver)
    stack.callback(rows.close)
    return rows


def _sqlite_file(url: str) -> str | None:
    """The path of a `sqlite:` URL (None for other URLs), never an in-memory database."""
    if engine_for_url(url).name != "sqlite":
        return None
    path = sqlite_path(url)
    if path == ":memory:":
        raise ConfigError(f"an in-memory SQLite database cannot be migrated from or to: {url}")
    return path


@contextmanager
def _open_source(url: str) -> Iterator[Any]:
    """The source's saver, which never sets up or migrates the schema."""
    path = _sqlite_file(url)
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"the source database {path} does not exist")
    with from_url(url, auto_setup=False) as saver:
        yield saver


@contextmanager
def _open_target(url: str, source_url: str, dry_run: bool) -> Iterator[Any]:
    """The target's saver, its schema set up (None on a dry run to a missing SQLite file)."""
    path, source_path = _sqlite_file(url), _sqlite_file(source_url)
    same = url == source_url
    if path is not None and source_path is not None and os.path.exists(path):
        same = os.path.samefile(path, source_path)
    if same:
        raise ConfigError(f"the source and the target are the same database: {redact(url)}")
    if path is not None and not os.path.exists(path):
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ConfigError(f"the target database's folder {folder} does not exist")
        if dry_run:
            yield None  # a dry run creates nothing
            return
    with from_url(url, auto_setup=False) as saver:
        if not dry_run:
            saver.setup()
        yield saver


def _check_version(found: int | None, latest: int, what: str, dry_run: bool = False) -> None:
    if found is None and dry_run and what.startswith("target"):
        return  # an empty target: everything would be copied
    if found is None:
        raise SchemaVersionError(
            f"the {what} has no langgraph-store-dual schema (for a database of the official "
            "LangGraph savers, use import_official)"
        )
    if found > latest:
        raise SchemaVersionError(
            f"the {what} is at schema version {found}, newer than version {latest} that this "
            "langgraph-store-dual understands: upgrade the package"
        )
    if found < latest:
        raise SchemaVersionError(
            f"the {what} is at schema version {found}, this package needs {latest}: open it "
            "once with this version (setup() migrates it), then migrate"
        )


class _Copy:
    """Copies tables batch by batch, counting and sampling what goes by."""

    def __init__(
        self,
        src: Rows,
        tgt: Rows | None,
        report: TransferReport,
        progress: ProgressCallback | None,
        dry_run: bool,
    ) -> None:
        self.src, self.tgt, self.report = src, tgt, report
        self.progress, self.dry_run = progress, dry_run
        self.same_engine = tgt is not None and tgt.engine == src.engine
        self.checkpoints: Sample[tuple[str, str, str]] = Sample(0)
        self.threads: Sample[tuple[str, datetime]] = Sample(0)

    def table(
        self, table: Table, since: datetime | None, batch_size: int, total: int, samples: int
    ) -> None:
        done = 0
        self.report.add(table.kind)  # zero when there is nothing to copy
        if table is CHECKPOINTS:
            self.checkpoints = Sample(samples)
        if table is THREADS:
            self.threads = Sample(samples)
        for rows in self.src.batches(table, since, batch_size):
            changed = self._batch(table, rows)
            self.report.add(table.kind, copied=changed, skipped=len(rows) - changed)
            done += len(rows)
            if self.progress is not None:
                self.progress(Progress(table.kind, done, total))

    def _batch(self, table: Table, rows: list[Any]) -> int:
        if table is CHECKPOINTS:
            self.checkpoints.offer(row[:3] for row in rows)
        if table is THREADS:
            neutral = self.src.decode(table, rows)  # updated_at as a datetime
            at = table.names.index("updated_at")
            self.threads.offer((row[0], row[at]) for row in neutral)
        if self.tgt is None:
            return len(rows)
        if self.dry_run:
            return len(rows) - self.tgt.existing(table, rows)
        if not self.same_engine:
            rows = self.tgt.encode(table, self.src.decode(table, rows))
        return self.tgt.write(table, rows)


def _verify(
    source: Any,
    target: Any,
    copy: _Copy,
    report: TransferReport,
    progress: ProgressCallback | None,
    *,
    checks_references: bool,
) -> None:
    checks: list[Any] = [(compare_checkpoint, key) for key in copy.checkpoints.items]
    checks += [(compare_thread, item) for item in copy.threads.items]
    if progress is not None:
        progress(Progress("verify", 0, len(checks)))
    if checks_references:
        report.problems += [f"target: {p}" for p in target.check_references()]
    for done, (check, item) in enumerate(checks, 1):
        args = item if check is compare_thread else (item,)
        if (problem := check(source, target, *args)) is not None:
            report.problems.append(problem)
        report.samples_checked += 1
        if progress is not None:
            progress(Progress("verify", done, len(checks)))
