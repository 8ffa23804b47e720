"""`prune` (by age, keep the last N, idle threads), `sweep` (expired thread ttls, from
cron) and `vacuum` (give the space back)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import maintenance
from ..errors import ConfigError
from .common import Json, Url, emit, one_of, open_raw, open_saver, out, seconds, size

PRUNE_HELP = """Delete old checkpoints or idle threads. Give one of --older-than, --keep-last,
--idle. Each thread keeps its latest checkpoint (and the ancestors its DeltaChannels
need). --dry-run counts what would go (at most that much) and deletes nothing. Run
`vacuum` afterwards to give the space back."""


def register(app: typer.Typer) -> None:
    app.command("prune", help=PRUNE_HELP)(prune)
    app.command("sweep")(sweep)
    app.command("vacuum")(vacuum)


def prune(
    url: Url,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Checkpoints older than e.g. 30d.")
    ] = None,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", help="Keep the last N checkpoints per thread.")
    ] = None,
    idle: Annotated[
        str | None, typer.Option("--idle", help="Delete threads idle for e.g. 90d.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="With --idle: only this user's.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    as_json: Json = False,
) -> None:
    policy = one_of({"--older-than": older_than, "--keep-last": keep_last, "--idle": idle}, "prune")
    if user is not None and policy != "--idle":
        raise ConfigError("--user goes with --idle (age and keep-last pruning apply to all)")
    if keep_last is not None and keep_last < 1:
        raise ConfigError("--keep-last needs N >= 1 (to delete threads, use threads delete)")
    age = seconds(older_than or idle or "0s")
    with open_saver(url) as saver:
        saver.threads.count()  # checks the schema before anything is counted or deleted
        if dry_run:
            result = _preview(url, policy, age, keep_last, user)
        elif policy == "--idle":
            result = _delete_idle(url, saver, age, user)
        else:
            removed = (
                saver.threads.keep_last(keep_last)
                if keep_last is not None
                else saver.threads.prune_older_than(age)
            )
            result = {
                "threads": len(removed.threads),
                "checkpoints": removed.checkpoints,
                "writes": removed.writes,
            }
    result = {"dry_run": dry_run, "policy": policy[2:].replace("-", "_"), **result}

    def human() -> None:
        verb = "would delete at most" if dry_run else "deleted"
        what = f"{result['checkpoints']} checkpoint(s) of {result['threads']} thread(s)"
        if policy == "--idle":
            what = f"{result['threads']} idle thread(s) with {result['checkpoints']} checkpoint(s)"
        out.print(f"{verb} {what}")
        if not dry_run and result["checkpoints"]:
            out.print("run `vacuum` to give the space back")

    emit(as_json, result, human)


def _preview(
    url: str, policy: str, age: float, keep_last: int | None, user: str | None
) -> dict[str, Any]:
    engine = maintenance.engine_of(url)
    with open_raw(url) as conn:
        if policy == "--older-than":
            return maintenance.older_than_preview(conn, engine, age)
        if policy == "--keep-last":
            return maintenance.keep_last_preview(conn, engine, keep_last or 1)
        idle = maintenance.idle_threads(conn, engine, age, user)
    return {
        "threads": len(idle),
        "checkpoints": sum(n for _, n in idle),
        "thread_ids": [tid for tid, _ in idle],
    }


def _delete_idle(url: str, saver: Any, age: float, user: str | None) -> dict[str, Any]:
    if user is None:
        removed = saver.threads.delete_idle_threads(age)
        return {
            "threads": len(removed.threads),
            "checkpoints": removed.checkpoints,
            "writes": removed.writes,
            "thread_ids": list(removed.threads),
        }
    engine = maintenance.engine_of(url)
    with open_raw(url) as conn:
        idle = maintenance.idle_threads(conn, engine, age, user)
    gone = [tid for tid, _ in idle if saver.threads.delete(tid)]
    return {
        "threads": len(gone),
        "checkpoints": sum(n for tid, n in idle if tid in gone),
        "thread_ids": gone,
    }


def sweep(
    url: Url,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most N threads (default: all expired).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Threads per transaction.")] = 100,
    as_json: Json = False,
) -> None:
    """Apply the expired thread ttls (`threads.sweep`): `delete` threads go, `keep_latest`
    ones keep their latest checkpoints. Safe while graphs run; meant for cron."""
    with open_saver(url) as saver:
        removed = saver.threads.sweep(limit=limit, batch_size=batch_size)
    result = {
        "threads": len(removed.threads),
        "checkpoints": removed.checkpoints,
        "writes": removed.writes,
        "thread_ids": list(removed.threads),
    }

    def human() -> None:
        if not removed.threads:
            out.print("sweep: no thread had expired")
            return
        out.print(
            f"sweep: {len(removed.threads)} expired thread(s) deleted or pruned, "
            f"{removed.checkpoints} checkpoint(s) and {removed.writes} write(s) removed"
        )

    emit(as_json, result, human)


def vacuum(url: Url, as_json: Json = False) -> None:
    """Give back the space deleted rows left: SQLite VACUUM (rewrites the file; needs as
    much free disk), PostgreSQL VACUUM (ANALYZE) of our tables."""
    engine = maintenance.engine_of(url)
    with open_raw(url) as conn:
        before = maintenance.database_bytes(conn, engine, url)
        statements = maintenance.vacuum(conn, engine)
        after = maintenance.database_bytes(conn, engine, url)
    result = {"statements": statements, "bytes_before": before, "bytes_after": after}
    emit(
        as_json,
        result,
        lambda: out.print(f"{'; '.join(statements)}: {size(before)} -> {size(after)}"),
    )
