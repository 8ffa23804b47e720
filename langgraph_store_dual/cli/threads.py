"""`threads list|show|rename|archive|unarchive|delete`: the thread registry."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .. import Thread
from ..errors import ConfigError, NotFoundError
from .common import Json, Url, emit, metadata_filter, open_saver, out, size, table, when

app = typer.Typer(help="List and manage conversation threads.", no_args_is_help=True)

Ids = Annotated[list[str], typer.Argument(help="Thread ids.", show_default=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@app.command("list")
def list_threads(
    url: Url,
    user: Annotated[str | None, typer.Option(help="Only this user's threads.")] = None,
    status: Annotated[str | None, typer.Option(help="active or archived.")] = None,
    run_state: Annotated[
        str | None, typer.Option("--run-state", help="idle, interrupted or error.")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="Metadata key=value (JSON or text); repeat for more."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Threads per page (1 to 1000).")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: Json = False,
) -> None:
    """Threads by latest activity, newest first, with the total that match."""
    filters: dict[str, Any] = {
        "user_id": user,
        "status": status,
        "run_state": run_state,
        "metadata": metadata_filter(meta),
    }
    with open_saver(url) as saver:
        page = saver.threads.list(**filters, limit=limit, cursor=cursor)
        total = saver.threads.count(**filters)
    result = {"threads": page.items, "next_cursor": page.next_cursor, "total": total}

    def human() -> None:
        grid = table("thread", "user", "title", "status", "run state", "updated")
        for t in page.items:
            grid.add_row(
                t.thread_id,
                t.user_id or "",
                t.title or "",
                t.status,
                t.run_state,
                when(t.updated_at),
            )
        out.print(grid)
        out.print(f"{len(page.items)} of {total} thread(s)")
        if page.next_cursor:
            out.print(f"next page: --cursor {page.next_cursor}")

    emit(as_json, result, human)


@app.command("show")
def show(url: Url, thread_id: str, as_json: Json = False) -> None:
    """A thread's details and what it stores."""
    with open_saver(url) as saver:
        thread = _existing(saver, thread_id)
        stats = saver.threads.stats(thread_id)
    result = {"thread": thread, "stats": stats}

    def human() -> None:
        _print_thread(thread)
        out.print(
            f"checkpoints: {stats.checkpoints}, writes: {stats.writes}, "
            f"stored: {size(stats.bytes)}, last activity: {when(stats.last_activity)}"
        )

    emit(as_json, result, human)


@app.command("rename")
def rename(url: Url, thread_id: str, title: str, as_json: Json = False) -> None:
    """Set a thread's title."""
    with open_saver(url) as saver:
        _existing(saver, thread_id)
        thread = saver.threads.update(thread_id, title=title)
    emit(as_json, thread, lambda: _print_thread(thread))


@app.command("archive")
def archive(url: Url, thread_ids: Ids, as_json: Json = False) -> None:
    """Mark threads archived (they stay, and `list --status active` hides them)."""
    _set_status(url, thread_ids, "archive", as_json)


@app.command("unarchive")
def unarchive(url: Url, thread_ids: Ids, as_json: Json = False) -> None:
    """Mark archived threads active again."""
    _set_status(url, thread_ids, "unarchive", as_json)


@app.command("delete")
def delete(url: Url, thread_ids: Ids, yes: Yes = False, as_json: Json = False) -> None:
    """Delete threads with all their checkpoints and writes."""
    with open_saver(url) as saver:
        for thread_id in thread_ids:
            _existing(saver, thread_id)
        _confirm(yes, f"delete {len(thread_ids)} thread(s) and all their checkpoints?")
        for thread_id in thread_ids:
            saver.threads.delete(thread_id)
    emit(as_json, {"deleted": thread_ids}, lambda: out.print(f"deleted {', '.join(thread_ids)}"))


def _set_status(url: str, thread_ids: list[str], action: str, as_json: bool) -> None:
    with open_saver(url) as saver:
        for thread_id in thread_ids:
            _existing(saver, thread_id)
        changed = [getattr(saver.threads, action)(thread_id) for thread_id in thread_ids]
    emit(as_json, changed, lambda: out.print(f"{action}d {', '.join(thread_ids)}"))


def _existing(saver: Any, thread_id: str) -> Thread:
    thread = saver.threads.get(thread_id)
    if thread is None:
        raise NotFoundError(f"no thread {thread_id!r}")
    return thread  # type: ignore[no-any-return]


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{question} Pass --yes to confirm when not on a terminal")
    typer.confirm(question, abort=True)


def _print_thread(t: Thread) -> None:
    out.print(f"thread {t.thread_id}")
    for label, value in (
        ("title", t.title or ""),
        ("user", t.user_id or ""),
        ("status", t.status),
        ("run state", t.run_state),
        ("created", when(t.created_at)),
        ("updated", when(t.updated_at)),
        ("metadata", t.metadata),
    ):
        out.print(f"  {label}: {value}")
