"""`migrate`, `import-official`, `export`, `import`, `backup`, `restore`: moving data, with
a progress bar on a terminal. The transfer functions are imported when a command runs."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ConfigError, StoreError
from .common import EXIT_ERROR, Json, Url, emit, err, one_of, out, seconds

Source = Annotated[str, typer.Argument(help="Source database URL.", show_default=False)]
Target = Annotated[str, typer.Argument(help="Target database URL.", show_default=False)]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Count what would be copied; copy nothing.")
]
Batch = Annotated[int, typer.Option("--batch-size", help="Rows per batch.")]


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
    app.command("import-official")(import_official)
    app.command("export")(export)
    app.command("import")(import_file)
    app.command("backup")(backup)
    app.command("restore")(restore)


def transfer_function(module: str, name: str) -> Callable[..., Any]:
    """`langgraph_store_dual.transfer.<module>.<name>`, or TransferMissing when this
    installation does not have it."""
    try:
        found = importlib.import_module(f"langgraph_store_dual.transfer.{module}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("langgraph_store_dual.transfer"):
            raise
        found = None
    function = getattr(found, name, None)
    if function is None:
        raise TransferMissing(
            f"this installation has no langgraph_store_dual.transfer.{module}.{name}: "
            "upgrade langgraph-store-dual"
        )
    return function  # type: ignore[no-any-return]


class TransferMissing(StoreError):
    """The transfer function a command needs is not installed."""


@contextmanager
def progress_bar() -> Iterator[Callable[[Any], None] | None]:
    """A `progress` callback drawing bars on stderr, or None when stderr is no terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def update(step: Any) -> None:
            if step.phase not in tasks:
                tasks[step.phase] = bars.add_task(step.phase, total=step.total)
            bars.update(tasks[step.phase], completed=step.done, total=step.total)

        yield update


def _report(report: Any, as_json: bool | None) -> None:
    """Print a transfer's report (to stderr when `as_json` is None: stdout holds data);
    exit 1 unless it is ok."""
    if as_json is None:
        err.print(f"exported {report.copied}, {'ok' if report.ok else 'FAILED'}")
        if not report.ok:
            raise typer.Exit(EXIT_ERROR)
        return

    def human() -> None:
        label = "would copy" if report.dry_run else "copied"
        kinds = sorted(set(report.copied) | set(report.skipped))
        for kind in kinds:
            out.print(
                f"{kind}: {label} {report.copied.get(kind, 0)}, "
                f"already there {report.skipped.get(kind, 0)}"
            )
        for count in report.counts:
            out.print(
                f"{count.kind}: source {count.source}, target {count.target}"
                f"{'' if count.ok else '  MISMATCH'}"
            )
        if report.samples_checked:
            out.print(f"verified {report.samples_checked} sample(s) by reading them back")
        for problem in report.problems:
            out.print(f"problem: {problem}")
        out.print(f"{'ok' if report.ok else 'FAILED'} in {report.seconds:.1f} s")

    emit(as_json, {**_fields(report), "ok": report.ok}, human)
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


def _fields(report: Any) -> dict[str, Any]:
    names = ("copied", "skipped", "counts", "samples_checked", "problems", "dry_run", "seconds")
    return {name: getattr(report, name) for name in names}


def since_time(text: str | None) -> datetime | None:
    """`--since`: an ISO date or time (UTC unless it says), or an age such as 7d."""
    if text is None:
        return None
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhdw]\s*", text):
        return datetime.now(timezone.utc) - timedelta(seconds=seconds(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give an ISO date/time or an age such as 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _transfer(function: str, *args: Any, as_json: bool | None, **options: Any) -> None:
    """Run the transfer function with a progress bar, and report (see `_report`)."""
    module = {
        "migrate": "migrate",
        "import_official": "official",
        "export_threads": "jsonl",
        "import_threads": "jsonl",
        "backup": "backup",
        "restore": "backup",
    }[function]
    run = transfer_function(module, function)
    with progress_bar() as progress:
        report = run(*args, progress=progress, **options)
    _report(report, as_json)


def migrate(
    source_url: Source,
    target_url: Target,
    dry_run: DryRun = False,
    threads_only: Annotated[
        bool, typer.Option("--threads-only", help="Thread rows only, no checkpoints.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only threads active since an ISO time or an age (7d).")
    ] = None,
    batch_size: Batch = 500,
    as_json: Json = False,
) -> None:
    """Copy threads, checkpoints and writes from one database to another (any engines);
    idempotent and resumable, verified by counts and read-back samples."""
    when = since_time(since)
    _transfer(
        "migrate",
        source_url,
        target_url,
        as_json=as_json,
        dry_run=dry_run,
        threads_only=threads_only,
        since=when,
        batch_size=batch_size,
    )


def import_official(
    source_url: Source,
    target_url: Target,
    dry_run: DryRun = False,
    batch_size: Batch = 500,
    pickle_key_env: Annotated[
        str | None,
        typer.Option(
            "--pickle-key-env",
            help="Trust the source's pickled values, signing them with the key held in "
            "this environment variable (readers of the target need the same key).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Import a database written by the official langgraph-checkpoint-sqlite/-postgres."""
    options: dict[str, Any] = {}
    if pickle_key_env is not None:
        key = os.environ.get(pickle_key_env)
        if not key:
            raise ConfigError(
                f"--pickle-key-env: the environment variable {pickle_key_env} is empty"
            )
        options["pickle_key"] = key.encode()
    _transfer(
        "import_official",
        source_url,
        target_url,
        as_json=as_json,
        dry_run=dry_run,
        batch_size=batch_size,
        **options,
    )


def export(
    url: Url,
    thread_ids: Annotated[list[str] | None, typer.Argument(help="Threads to export.")] = None,
    user: Annotated[str | None, typer.Option(help="All threads of this user.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every thread.")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="File; - is stdout.")] = "-",
    as_json: Json = False,
) -> None:
    """Write threads as JSON Lines (to a file, or stdout: then the report goes to stderr)."""
    one_of({"THREAD...": thread_ids, "--user": user, "--all": all_}, "export")
    to_stdout = output == "-"
    _transfer(
        "export_threads",
        url,
        sys.stdout if to_stdout else output,
        as_json=None if to_stdout else as_json,
        thread_ids=thread_ids or None,
        user_id=user,
    )


def import_file(
    url: Url,
    file: Annotated[Path, typer.Argument(help="A JSON Lines file written by export.")],
    as_json: Json = False,
) -> None:
    """Load threads from a JSON Lines export."""
    _transfer("import_threads", url, file, as_json=as_json)


def backup(
    url: Url,
    path: Annotated[Path, typer.Argument(help="Backup file to write.")],
    as_json: Json = False,
) -> None:
    """Back up a SQLite database while apps run (PostgreSQL: use pg_dump, see README)."""
    _transfer("backup", url, path, as_json=as_json)


def restore(
    url: Url,
    path: Annotated[Path, typer.Argument(help="Backup file to restore.")],
    as_json: Json = False,
) -> None:
    """Restore a SQLite backup into the database --url names."""
    _transfer("restore", path, url, as_json=as_json)
