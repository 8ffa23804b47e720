"""Thread search beyond owner, status, run state and metadata: a list of ids, creation and
activity ranges, and the order of `list` (its cursors name it). Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from ..errors import ConfigError
from .config import thread_id_of
from .fragments import Filter, Fragments

SORT_BY = ("updated_at", "created_at")
SORT_ORDER = ("desc", "asc")
#: Thread ids one search may name.
MAX_IDS = 10_000


@dataclass(frozen=True, slots=True)
class Sort:
    """The order of a thread list: by last activity or creation, newest or oldest first;
    ties by thread id. Threads are indexed by the minute of their last activity (see
    `thread_sql`), so that order reads the minute first."""

    by: str = "updated_at"
    order: str = "desc"

    @property
    def name(self) -> str:
        """How a cursor names the order."""
        return f"{self.by}:{self.order}"

    @property
    def order_by(self) -> str:
        cols = ("updated_minute", "updated_at") if self.by == "updated_at" else ("created_at",)
        direction = self.order.upper()
        return " ORDER BY " + ", ".join(f"{c} {direction}" for c in (*cols, "thread_id"))

    def keyset(self, d: Fragments, at: str, thread_id: str) -> list[str]:
        """The conditions selecting the rows after (`at`, `thread_id`) in this order; the
        first is a range an index scan can start at."""
        cmp = "<" if self.order == "desc" else ">"
        first = [f"updated_minute {cmp}= {d.minute(at)}"] if self.by == "updated_at" else []
        return [*first, f"({self.by}, thread_id) {cmp} ({at}, {thread_id})"]


#: The indexes a list by creation reads (schema version 6, both engines): a user's threads
#: and everyone's, in (created_at, thread_id) order either way.
CREATED_INDEXES = (
    "CREATE INDEX threads_user_created ON threads (user_id, created_at, thread_id)",
    "CREATE INDEX threads_created ON threads (created_at, thread_id)",
)

#: The order `list` had before it could be chosen (and its cursors, which name none).
BY_ACTIVITY = Sort()


def sort(by: Any = "updated_at", order: Any = "desc") -> Sort:
    if by not in SORT_BY:
        raise ConfigError(f"sort_by must be one of {', '.join(SORT_BY)}, got {by!r}")
    if order not in SORT_ORDER:
        raise ConfigError(f"sort_order must be one of {', '.join(SORT_ORDER)}, got {order!r}")
    return Sort(by, order)


def stamp(value: Any, what: str) -> str:
    """A bound of a time range (an aware datetime, or a date: its midnight UTC) as UTC ISO
    text to the millisecond: the text SQLite stores, which PostgreSQL casts."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(), timezone.utc)
    if not isinstance(value, datetime):
        raise ConfigError(f"{what} must be a datetime or a date, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{what} must be timezone-aware (e.g. tzinfo=timezone.utc)")
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Search:
    """What `list` and `count` filter on besides owner, status, run state and metadata:
    ids, and half-open time ranges (`*_after` inclusive, `*_before` exclusive)."""

    thread_ids: Sequence[str] | None = None
    created_after: datetime | date | None = None
    created_before: datetime | date | None = None
    updated_after: datetime | date | None = None
    updated_before: datetime | date | None = None

    def where(self, d: Fragments) -> Filter:
        """The WHERE clauses and parameters of these filters (checked)."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.thread_ids is not None:
            ids = self.thread_ids
            if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
                raise ConfigError(f"thread_ids must be a list of ids, got {type(ids).__name__}")
            if len(ids) > MAX_IDS:
                raise ConfigError(f"thread_ids names {len(ids)} threads, the limit is {MAX_IDS}")
            clauses.append(d.in_array("thread_id", "thread_ids"))
            params["thread_ids"] = d.array([thread_id_of(i) for i in ids])
        for name, column, cmp in (
            ("created_after", "created_at", ">="),
            ("created_before", "created_at", "<"),
            ("updated_after", "updated_at", ">="),
            ("updated_before", "updated_at", "<"),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            at = d.ts_param(name)
            if column == "updated_at":  # lets the index on the minute start or stop there
                clauses.append(f"updated_minute {cmp[0]}= {d.minute(at)}")
            clauses.append(f"{column} {cmp} {at}")
            params[name] = stamp(value, name)
        return clauses, params
