"""Decoding the official savers' typed values (`msgpack`, `json`, `bytes`, `bytearray`,
`null`, `pickle`) under our codec's revival policy, and reassembling checkpoints and
their pending writes from the rows `official_read` returns."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, writes_sort_key
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from ..codec import TAG, JsonCodec
from ..errors import ConfigError, DecodeError, UnsafeTypeError
from .official_read import TASKS, RawCheckpoint, Typed

#: A task's writes as `put_writes` takes them: ((task_id, task_path), [(channel, value)]).
TaskWrites = tuple[tuple[str, str], list[tuple[str, Any]]]

PICKLE_REFUSED = (
    "a pickled value is refused: unpickling runs whatever code the data names. If you "
    "trust this source database, pass pickle_key (a secret of 32 random bytes) to import "
    "pickles; the values our JSON cannot hold are then stored as pickles signed with it, "
    "and savers reading the target need the same pickle_key"
)


class Decoder:
    """Revives typed values as our savers would: classes under the serializer's msgpack
    policy (`LANGGRAPH_STRICT_MSGPACK`), pickles only when a `pickle_key` opts in."""

    def __init__(self, pickle_key: bytes | None = None) -> None:
        # the key only opts in here (source pickles are not signed); the codec checks it
        self.codec = JsonCodec(JsonPlusSerializer(), pickle_key=pickle_key)
        self._unpickler = JsonPlusSerializer(pickle_fallback=True) if pickle_key else None

    def value(self, typed: Typed) -> Any:
        type_, data = typed
        if type_ == "pickle":
            if self._unpickler is None:
                raise UnsafeTypeError(PICKLE_REFUSED)
            try:
                return self._unpickler.loads_typed((type_, data or b""))
            except Exception as exc:
                raise DecodeError(f"cannot unpickle: {type(exc).__name__}: {exc}") from exc
        blob = base64.b64encode(data or b"").decode("ascii")
        return self.codec.decode({TAG: "serde", "s": type_, "b": blob})

    def checkpoint(self, thread_id: str, raw: RawCheckpoint) -> dict[str, Any]:
        """The checkpoint as the official saver returns it (its id from the row)."""
        with context(thread_id, raw, "the checkpoint"):
            if raw.whole is not None:
                checkpoint = self.value(raw.whole)
                if not isinstance(checkpoint, dict):
                    raise DecodeError(f"it is a {type(checkpoint).__name__}, not a checkpoint")
            else:
                checkpoint = dict(raw.inline or {})
        values = dict(checkpoint.get("channel_values") or {})
        for channel, typed in raw.blobs.items():
            if typed[0] != "empty":  # a version with no value (the channel was emptied)
                with context(thread_id, raw, f"channel {channel!r}"):
                    values[channel] = self.value(typed)
        checkpoint["channel_values"] = values
        checkpoint["id"] = raw.checkpoint_id
        return checkpoint

    def writes(self, thread_id: str, raw: RawCheckpoint) -> list[TaskWrites]:
        """Pending writes by task, each task's in index order: regular writes at their
        positions, then the special ones (errors, interrupts, ...) that have fixed
        negative indexes, so `put_writes` stores the same indexes (or, after a gap, the
        same order)."""
        tasks: dict[str, TaskWrites] = {}
        for w in sorted(raw.writes, key=lambda w: (w.idx < 0, w.idx)):
            with context(thread_id, raw, f"write {w.idx} of task {w.task_id!r}"):
                value = self.value(w.value)
            if w.idx < 0 and WRITES_IDX_MAP.get(w.channel) != w.idx:
                raise DecodeError(
                    f"checkpoint {_name(thread_id, raw)}: write {w.idx} of task "
                    f"{w.task_id!r} to channel {w.channel!r} has an index LangGraph does "
                    "not give that channel"
                )
            tasks.setdefault(w.task_id, ((w.task_id, w.task_path), []))[1].append(
                (w.channel, value)
            )
        return list(tasks.values())

    def pending(self, thread_id: str, raw: RawCheckpoint) -> list[tuple[str, str, Any]]:
        """The pending writes as a read returns them, in LangGraph's order."""
        ordered = sorted(raw.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
        out = []
        for w in ordered:
            with context(thread_id, raw, f"write {w.idx} of task {w.task_id!r}"):
                out.append((w.task_id, w.channel, self.value(w.value)))
        return out

    def adopt_sends(
        self, checkpoint: dict[str, Any], sends: Callable[[], list[Typed]]
    ) -> dict[str, Any]:
        """A checkpoint before format 4 with its parent's pending `Send`s (from `sends`)
        in the tasks channel, as reads return it."""
        if checkpoint.get("v", 4) >= 4 or not (found := sends()):
            return checkpoint
        checkpoint["channel_values"][TASKS] = [self.value(t) for t in found]
        versions = checkpoint.setdefault("channel_versions", {})
        versions[TASKS] = max(versions.values()) if versions else 1
        return checkpoint


def _name(thread_id: str, raw: RawCheckpoint) -> str:
    ns = f" (namespace {raw.checkpoint_ns!r})" if raw.checkpoint_ns else ""
    return f"{raw.checkpoint_id} of thread {thread_id!r}{ns}"


@contextmanager
def context(thread_id: str, raw: RawCheckpoint, what: str) -> Iterator[None]:
    """Re-raise a DecodeError (UnsafeTypeError included) or ConfigError (a value our
    savers cannot store) naming the thread, the checkpoint and `what` of it failed, as
    the same type."""
    try:
        yield
    except (DecodeError, ConfigError) as exc:
        raise type(exc)(f"checkpoint {_name(thread_id, raw)}, {what}: {exc}") from exc
