"""Threads as values: rows of the `threads` table, the checks on what users store in them,
page cursors, and the owner and title a checkpoint gives a new thread. No I/O."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, get_checkpoint_metadata
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

from ..codec import MAP_ORDER, MAP_PAIRS, TAG
from ..errors import ConfigError, DecodeError
from .config import Target, thread_id_of

STATUSES = ("active", "archived")
RUN_STATES = ("idle", "interrupted", "error")
MAX_TITLE = 256  # characters
MAX_USER_ID = 256  # characters
MAX_METADATA_BYTES = 64 * 1024  # of JSON
MAX_METADATA_DEPTH = 16
AUTO_TITLE = 60  # characters of the first human message kept as a new thread's title
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation thread. `run_state` follows its latest checkpoint. With a `ttl`, it
    expires at `expires_at` (its last activity plus the ttl; None after a `keep_latest`
    sweep until its next activity)."""

    thread_id: str
    user_id: str | None
    title: str | None
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    run_state: str = "idle"
    ttl: timedelta | None = None
    ttl_strategy: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """One page of `list`; pass `next_cursor` back for the next (None on the last page)."""

    items: list[Thread]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ThreadStats:
    """What a thread holds: `bytes` is the stored size of its checkpoints and writes, the
    sum of `checkpoint_bytes` (snapshots and metadata), `value_bytes` (the values they
    intern) and `write_bytes` (pending writes). `channel_bytes`: by channel, the bytes
    of its values, inline in snapshots and interned (a value two channels hold counts
    for both)."""

    thread_id: str
    checkpoints: int
    writes: int
    bytes: int
    last_activity: datetime
    checkpoint_bytes: int = 0
    value_bytes: int = 0
    write_bytes: int = 0
    channel_bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Removed:
    """What a retention call deleted: the threads it deleted from (or deleted, for
    `delete_idle_threads`), and how many checkpoints and writes."""

    threads: tuple[str, ...] = ()
    checkpoints: int = 0
    writes: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(
            self.threads + other.threads,
            self.checkpoints + other.checkpoints,
            self.writes + other.writes,
        )


# -- rows ---------------------------------------------------------------------------------


def timestamp(value: datetime | str) -> datetime:
    """A stored time as an aware datetime (SQLite stores ISO text in UTC)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_thread(row: Sequence[Any]) -> Thread:
    """The thread of a `rows.ThreadRow`."""
    thread_id, user_id, title, status, run_state, metadata, created, updated = row[:8]
    ttl, strategy, expires = row[8:11]
    try:
        meta = orjson.loads(metadata)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"thread {thread_id!r} has malformed metadata: {exc}") from exc
    return Thread(
        thread_id,
        user_id,
        title,
        status,
        meta,
        timestamp(created),
        timestamp(updated),
        run_state,
        None if ttl is None else timedelta(seconds=ttl),
        strategy,
        None if expires is None else timestamp(expires),
    )


def new_thread_id(value: Any = None) -> str:
    """`value` as a thread id, or a new random one."""
    return str(uuid.uuid4()) if value is None else thread_id_of(value)


# -- checks -------------------------------------------------------------------------------


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__}")
    if len(value) > limit:
        raise ConfigError(f"{what} is {len(value)} characters long, the limit is {limit}")
    _storable(value, what)
    return value


def _storable(text: str, what: str) -> None:
    if "\x00" in text:
        raise ConfigError(f"{what} contains a NUL character, which JSON databases cannot store")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{what} is not valid Unicode text: {exc.reason}") from None


def check_title(title: Any) -> str | None:
    return None if title is None else _text(title, "title", MAX_TITLE)


def check_user_id(user_id: Any) -> str | None:
    if user_id is None:
        return None
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    return _text(user_id, "user_id", MAX_USER_ID)


def check_choice(value: Any, what: str, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return None if value is None else str(value)


def check_limit(limit: Any, top: int = MAX_PAGE, what: str = "limit") -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= top:
        raise ConfigError(f"{what} must be an int from 1 to {top}, got {limit!r}")
    return limit


def check_metadata(metadata: Any, what: str = "metadata") -> dict[str, Any]:
    """`metadata` if it is a JSON object of plain values within the limits, else ConfigError."""
    if not isinstance(metadata, dict):
        raise ConfigError(f"{what} must be a dict, got {type(metadata).__name__}")
    _check_json(metadata, what, 0)
    size = len(dump_metadata(metadata))
    if size > MAX_METADATA_BYTES:
        raise ConfigError(f"{what} is {size} bytes of JSON, the limit is {MAX_METADATA_BYTES}")
    return metadata


def _check_json(value: Any, where: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ConfigError(f"{where} nests deeper than {MAX_METADATA_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            _storable(value, where)
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{where} is an int outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} is {value}: JSON has no NaN or infinity")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} has a key that is not a str: {key!r}")
            if key in (TAG, MAP_PAIRS, MAP_ORDER):
                raise ConfigError(f"{where} uses the reserved key {key!r}")
            _storable(key, f"{where} key {key!r}")
            _check_json(item, f"{where}[{key!r}]", depth + 1)
    else:
        raise ConfigError(
            f"{where} holds a {type(value).__name__}: use JSON values (str, int, float, "
            "bool, None, list, dict)"
        )


def dump_metadata(metadata: dict[str, Any]) -> str:
    """JSON text of checked metadata, keys sorted (SQLite matches nested values as text)."""
    return orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()


def merge_metadata(stored: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge: keys in `update` replace stored ones; a key set to None is removed."""
    merged = {**stored, **update}
    return {k: v for k, v in merged.items() if not (k in update and update[k] is None)}


def seconds(age: Any, what: str = "age") -> float:
    """An age (timedelta or seconds) as non-negative seconds."""
    if isinstance(age, timedelta):
        age = age.total_seconds()
    if not isinstance(age, (int, float)) or isinstance(age, bool) or not age >= 0:
        raise ConfigError(f"{what} must be a timedelta or a number of seconds >= 0, got {age!r}")
    return float(age)


# -- cursors ------------------------------------------------------------------------------


#: The order of cursors that name none (made before `list` could sort otherwise).
DEFAULT_SORT = "updated_at:desc"


def encode_cursor(at: datetime | str, thread_id: str, sort: str = DEFAULT_SORT) -> str:
    """An opaque keyset cursor: the position after the row (`at`, thread_id) in the
    order `sort` names (its sort column's value `at`)."""
    stamp = at.isoformat() if isinstance(at, datetime) else at
    key = [stamp, thread_id] if sort == DEFAULT_SORT else [stamp, thread_id, sort]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: Any, sort: str = DEFAULT_SORT) -> tuple[str, str]:
    """The position a cursor of a list in order `sort` holds; ConfigError if it is
    malformed or from a list in another order."""
    made = None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, thread_id, *named = orjson.loads(raw)
        if isinstance(stamp, str) and isinstance(thread_id, str) and len(named) <= 1:
            timestamp(stamp)
            made = named[0] if named else DEFAULT_SORT
    except (TypeError, ValueError, binascii.Error, orjson.JSONDecodeError):
        pass
    if not isinstance(made, str):
        raise ConfigError(f"malformed cursor {cursor!r}: pass a page's next_cursor unchanged")
    if made != sort:
        raise ConfigError(
            f"this cursor is from a list sorted by {made.replace(':', ' ')}, not "
            f"{sort.replace(':', ' ')}: pass it back with the sort it was made with"
        )
    return stamp, thread_id


# -- what a checkpoint tells about its thread -----------------------------------------------


def touch_values(
    t: Target, checkpoint: Checkpoint, meta: CheckpointMetadata, readable: bool = True
) -> dict[str, Any]:
    """Parameters of the thread upsert of a put (`touch`): thread_id, user_id, title,
    head_ts. `meta`: the checkpoint's metadata merged with its config's.

    A title given in the metadata is kept; else, only when the serializer stores values
    as `readable` JSON, the first human message becomes it (an encrypting serializer's
    conversation must not appear in clear in the thread list).
    """
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        title = auto_title(checkpoint.get("channel_values") or {}) if readable else None
    return {
        "thread_id": t.thread_id,
        "user_id": owner(meta),
        "title": _clean(title[:MAX_TITLE]) if title else None,
        "head_ts": None if t.checkpoint_ns else checkpoint["id"],
    }


def owner(meta: Mapping[str, Any]) -> str | None:
    """The owner a run names: `user_id` of its configurable or metadata (merged in `meta`)."""
    user_id = meta.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
        return None
    return _clean(str(user_id)[:MAX_USER_ID])


def state_values(
    t: Target, config: RunnableConfig, channels: Sequence[str]
) -> dict[str, Any] | None:
    """Parameters of the run-state upsert (`note_state`) of a task's writes to a root
    checkpoint that report an error or an interrupt: thread_id, user_id, state, state_ts;
    else None."""
    state = "error" if ERROR in channels else "interrupted" if INTERRUPT in channels else None
    if state is None or t.checkpoint_ns:
        return None
    return {
        "thread_id": t.thread_id,
        "user_id": owner(get_checkpoint_metadata(config, {})),
        "state": state,
        "state_ts": t.checkpoint_id,
    }


def _clean(text: str) -> str:
    """`text` without what JSON databases cannot store (NUL, lone surrogates)."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode()


def auto_title(values: dict[str, Any]) -> str | None:
    """The first human message of a state (or of a run's input), shortened."""
    start = values.get("__start__")
    given = start.get("messages") if isinstance(start, dict) else start
    for messages in (values.get("messages"), given):
        text = _first_human(messages)
        if text:
            return shorten(text)
    return None


def shorten(text: str, limit: int = AUTO_TITLE) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut) + "…"


def _first_human(messages: Any) -> str | None:
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, (list, tuple)):
        messages = [messages]
    for message in messages:
        if isinstance(message, str):
            return message
        role, content = _role_and_content(message)
        if role in ("human", "user"):
            return _text_of(content)
    return None


def _role_and_content(message: Any) -> tuple[Any, Any]:
    if isinstance(message, dict):
        return message.get("role", message.get("type")), message.get("content")
    if isinstance(message, (tuple, list)) and len(message) == 2:
        return message[0], message[1]
    return getattr(message, "type", None), getattr(message, "content", None)


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        texts = [b.get("text") if isinstance(b, dict) else b for b in content]
        return " ".join(t for t in texts if isinstance(t, str)).strip() or None
    return None
