"""What `langgraph-store-dual sweep` runs (from cron): apply the expired thread ttls of the
database a URL names, and say what went."""

from __future__ import annotations

import os
from typing import Any

from .core.retention import DEFAULT_BATCH
from .core.thread_model import Removed
from .threads import ThreadManager
from .urls import DEFAULT_URL


def sweep(
    url: str | None = None,
    *,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    **options: Any,
) -> Removed:
    """Open the database `url` names (None: `DATABASE_URL`, as `from_url`), run
    `threads.sweep(limit=..., batch_size=...)` and close it. `options` go to the saver."""
    url = url if url is not None else os.environ.get("DATABASE_URL") or DEFAULT_URL
    with ThreadManager(url, **options) as threads:
        return threads.sweep(limit=limit, batch_size=batch_size)


def as_dict(removed: Removed) -> dict[str, Any]:
    """A sweep's result for `--json`: counts, and the ids of the threads deleted or pruned."""
    return {
        "threads": len(removed.threads),
        "checkpoints": removed.checkpoints,
        "writes": removed.writes,
        "thread_ids": list(removed.threads),
    }


def describe(removed: Removed) -> str:
    """A sweep's result in one line, for people and cron mail."""
    if not removed.threads:
        return "sweep: no thread had expired"
    return (
        f"sweep: {len(removed.threads)} expired thread(s) deleted or pruned, "
        f"{removed.checkpoints} checkpoint(s) and {removed.writes} write(s) removed"
    )
