"""Checks at the end of a migration: a uniform sample of what was copied, read back
through the source's and the target's savers and compared."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from ..errors import StoreError

T = TypeVar("T")

_COMPARED = ("checkpoint", "metadata", "parent_config", "pending_writes")


class Sample(Generic[T]):
    """`size` items drawn uniformly from a stream of unknown length (reservoir sampling)."""

    def __init__(self, size: int, rng: random.Random | None = None) -> None:
        self.size = size
        self.items: list[T] = []
        self._seen = 0
        self._rng = rng or random.Random()

    def offer(self, items: Iterable[T]) -> None:
        for item in items:
            self._seen += 1
            if len(self.items) < self.size:
                self.items.append(item)
            elif (j := self._rng.randrange(self._seen)) < self.size:
                self.items[j] = item


def _read(call: Callable[[Any], Any], arg: Any) -> tuple[Any, str | None]:
    """`call(arg)`, or the error our savers raise on purpose (e.g. a value this process
    cannot decode), as text."""
    try:
        return call(arg), None
    except StoreError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _equal(a: Any, b: Any) -> bool:
    return bool(a == b) or repr(a) == repr(b)  # repr: NaN is not equal to itself


def compare_checkpoint(source: Any, target: Any, key: tuple[str, str, str]) -> str | None:
    """A problem, if checkpoint `key` (thread_id, ns, id) reads differently through the
    target's saver than through the source's; None when the same (or gone from the source)."""
    thread_id, ns, ts = key
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": ts}}
    name = f"checkpoint {thread_id}/{ns}/{ts}" if ns else f"checkpoint {thread_id}/{ts}"
    want, want_error = _read(source.get_tuple, config)
    got, got_error = _read(target.get_tuple, config)
    if want_error or got_error:
        if want_error == got_error:  # both refuse it alike: a serializer this process lacks
            return None
        return f"{name}: the source reads {want_error or 'fine'}, the target {got_error or 'fine'}"
    if want is None:  # deleted from the source since it was copied
        return None
    if got is None:
        return f"{name} is missing on the target"
    for field in _COMPARED:
        if not _equal(getattr(want, field), getattr(got, field)):
            return f"{name}: {field.replace('_', ' ')} differs between source and target"
    return None


def _ms(value: datetime) -> datetime:
    """A time at millisecond precision (SQLite keeps no more)."""
    utc = value.astimezone(timezone.utc)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def compare_thread(source: Any, target: Any, thread_id: str, updated_at: datetime) -> str | None:
    """A problem, if thread `thread_id`'s row (as the source held it at `updated_at`)
    reads differently on the target; None when the same, or changed on the source since."""
    want = source.threads.get(thread_id)
    if want is None or _ms(want.updated_at) != _ms(updated_at):
        return None
    got = target.threads.get(thread_id)
    if got is None:
        return f"thread {thread_id} is missing on the target"
    want, got = (
        replace(
            t,
            created_at=_ms(t.created_at),
            updated_at=_ms(t.updated_at),
            expires_at=None if t.expires_at is None else _ms(t.expires_at),
        )
        for t in (want, got)
    )
    if want != got:
        return f"thread {thread_id} differs between source and target: {want} != {got}"
    return None
