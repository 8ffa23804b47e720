"""Thread managers: the thread registry, time travel and retention on a saver's database.

`ThreadManager` (blocking) and `AsyncThreadManager` (awaitable) share every method body:
each names a sans-I/O operation of `core.threads`, `core.history` or `core.retention`,
and `_call` / `_drive` run it on the saver, blocking or awaited. Reach one as
`saver.threads`, or open one alone on a URL, a connection or a pool.
"""

from __future__ import annotations

import asyncio
import builtins
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from .core import history, retention, search, usage
from .core import threads as ops
from .core.history import CheckpointDiff
from .core.ops import Op, arun, run
from .core.thread_model import Removed, Thread, ThreadPage, ThreadStats
from .core.usage import Usage
from .errors import ConfigError
from .saver import AsyncSaver, SyncSaver
from .urls import from_url

T = TypeVar("T")
Age = timedelta | float
When = datetime | date | None

_SOURCES = "a saver, a database URL, a connection or a pool"


def _is_a(obj: Any, *kinds: str) -> bool:
    """Whether `obj` is one of `kinds` ("module.Class"), without importing a driver: an
    object of a driver that was never imported cannot exist."""
    for kind in kinds:
        module, _, name = kind.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(obj, cls):
            return True
    return False


class _Threads:
    """The methods of both managers. In `AsyncThreadManager` each returns an awaitable."""

    saver: Any

    def _call(self, make: Callable[..., Op[T]], *args: Any, write: bool = False) -> T:
        """Run `make(dialect, *args)` in one transaction."""
        raise NotImplementedError

    def _drive(self, make: Callable[..., retention.Plan[T]], *args: Any) -> T:
        """Run the plan `make(dialect, *args)`: each operation it yields in a transaction."""
        raise NotImplementedError

    def _listed(self, config: Any, before: Any, limit: int | None) -> list[CheckpointTuple]:
        """The saver's `list` (or `alist`), collected."""
        raise NotImplementedError

    # -- the registry ------------------------------------------------------------------
    def create(
        self,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Thread:
        """A new thread (id generated unless given); ThreadExistsError if it is taken."""
        return self._call(ops.create, thread_id, user_id, title, metadata, write=True)

    def get(self, thread_id: str) -> Thread | None:
        """The thread, or None if there is none (the methods acting on a thread raise
        NotFoundError)."""
        return self._call(ops.get, thread_id)

    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        run_state: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 20,
        cursor: str | None = None,
        thread_ids: Sequence[str] | None = None,
        created_after: When = None,
        created_before: When = None,
        updated_after: When = None,
        updated_before: When = None,
        sort_by: str = "updated_at",
        sort_order: str = "desc",
    ) -> ThreadPage:
        """Threads by latest activity, newest first (`sort_by="created_at"`,
        `sort_order="asc"` to change). Filters: owner, status (active, archived), run
        state (idle, interrupted, error), metadata (each key equal), ids, and time ranges
        (aware datetimes or dates; `*_after` inclusive, `*_before` exclusive). Pass
        `next_cursor` back, with the same filters and sort, for the next page."""
        found = search.Search(
            thread_ids, created_after, created_before, updated_after, updated_before
        )
        order = search.sort(sort_by, sort_order)
        args = (user_id, status, run_state, metadata, limit, cursor, found, order)
        return self._call(ops.page, *args)

    def count(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        run_state: str | None = None,
        metadata: dict[str, Any] | None = None,
        thread_ids: Sequence[str] | None = None,
        created_after: When = None,
        created_before: When = None,
        updated_after: When = None,
        updated_before: When = None,
    ) -> int:
        """How many threads `list` finds with the same filters."""
        found = search.Search(
            thread_ids, created_after, created_before, updated_after, updated_before
        )
        return self._call(ops.count, user_id, status, run_state, metadata, found)

    def update(
        self, thread_id: str, *, title: Any = ops.UNSET, metadata: dict[str, Any] | None = None
    ) -> Thread:
        """Rename (`title`, None clears it) and merge `metadata` (a key set to None is removed)."""
        return self._call(ops.update, thread_id, title, metadata, write=True)

    def archive(self, thread_id: str) -> Thread:
        return self._call(ops.update, thread_id, ops.UNSET, None, "archived", write=True)

    def unarchive(self, thread_id: str) -> Thread:
        return self._call(ops.update, thread_id, ops.UNSET, None, "active", write=True)

    def copy(self, thread_id: str, new_thread_id: str | None = None) -> Thread:
        """A new thread with the whole history (checkpoints and writes) of `thread_id`."""
        return self._call(ops.copy, thread_id, new_thread_id, write=True)

    def delete(self, thread_id: str) -> bool:
        """Delete a thread, its checkpoints and writes; whether the thread existed."""
        return self._call(ops.delete, thread_id, write=True)

    def stats(self, thread_id: str) -> ThreadStats:
        """Counts and stored bytes of a thread: checkpoints, interned values, writes, and
        by channel."""
        return self._call(ops.stats, thread_id)

    def usage(
        self,
        thread_id: str | None = None,
        *,
        user_id: str | None = None,
        since: When = None,
        until: When = None,
        group_by: Sequence[str] = ("model",),
        prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> builtins.list[Usage]:
        """Token usage of the AI messages stored in writes (of a thread, of a user's
        threads, or all), each counted once, in [`since`, `until`) by when it was first
        written, grouped by any of "model", "thread", "user", "day"; priced per token
        with `prices={"model": {"input": p, "output": p}}` (None for an unpriced model)."""
        args = (thread_id, user_id, since, until, group_by, prices)
        return self._call(usage.usage, *args)

    # -- time travel -------------------------------------------------------------------
    def history(
        self,
        thread_id: str,
        *,
        limit: int | None = 20,
        before: RunnableConfig | str | None = None,
        checkpoint_ns: str = "",
    ) -> list[CheckpointTuple]:
        """A page of a thread's checkpoints, newest first (`limit=None`: all of them); the
        next page is `before=page[-1].config`. Streams through the saver's `list`."""
        return self._listed(*history.history_args(thread_id, limit, before, checkpoint_ns))

    def lineage(self, config: RunnableConfig, *, limit: int | None = None) -> list[CheckpointTuple]:
        """The checkpoint `config` names (default: the latest) and its parent chain,
        newest first, in one query."""
        return self._call(lambda d: history.lineage(d, self.saver.codec, config, limit))

    def diff(self, config_a: RunnableConfig, config_b: RunnableConfig) -> CheckpointDiff:
        """Which channels changed from checkpoint `config_a` to `config_b`, and how."""
        return self._call(lambda d: history.diff(d, self.saver.codec, config_a, config_b))

    def fork(self, config: RunnableConfig, new_thread_id: str | None = None) -> Thread:
        """A new thread holding the checkpoint `config` names and its ancestors: resuming
        it continues from that checkpoint, leaving the source thread as it is."""
        return self._call(history.fork, config, new_thread_id, write=True)

    # -- retention -----------------------------------------------------------------------
    def prune_older_than(self, age: Age, *, batch_size: int = retention.DEFAULT_BATCH) -> Removed:
        """Delete checkpoints older than `age` (timedelta or seconds), keeping each
        thread's latest and the ancestors `DeltaChannel`s need; `batch_size` threads per
        transaction."""
        return self._drive(retention.prune_older_than, age, batch_size)

    def keep_last(self, n: int, *, batch_size: int = retention.DEFAULT_BATCH) -> Removed:
        """Keep the last `n` checkpoints of each thread and namespace, and the ancestors
        their `DeltaChannel`s need."""
        return self._drive(retention.keep_last, n, batch_size)

    def delete_idle_threads(
        self, age: Age, *, batch_size: int = retention.DEFAULT_BATCH
    ) -> Removed:
        """Delete the threads with no activity for `age`, with their checkpoints and writes."""
        return self._drive(retention.delete_idle_threads, age, batch_size)


class ThreadManager(_Threads):
    """Threads of a saver's database, blocking. `source`: a saver (sync, or async from
    another thread), a URL, a `sqlite3` or `psycopg` connection, or a `psycopg_pool`
    pool; `options` go to the saver it opens. Close what it opened with `close()` or `with`.

    >>> with ThreadManager("sqlite:///agent.db") as threads:
    ...     page = threads.list(user_id="ana@example.com")
    """

    def __init__(self, source: Any, **options: Any) -> None:
        self._opener: Any = None
        if isinstance(source, (SyncSaver, AsyncSaver)):
            self.saver = source
        elif isinstance(source, str):
            self._opener = from_url(source, **options)
            self.saver = self._opener.__enter__()
        elif _is_a(source, "sqlite3.Connection"):
            from .sqlite import SqliteSaver

            self.saver = SqliteSaver(source, **options)
        elif _is_a(source, "psycopg.Connection", "psycopg_pool.ConnectionPool"):
            from .postgres import PostgresSaver

            self.saver = PostgresSaver(source, **options)
        else:
            raise ConfigError(f"ThreadManager needs {_SOURCES}, got {type(source).__name__}")

    def _run(self, op: Op[T], write: bool) -> T:
        saver = self.saver
        if isinstance(saver, AsyncSaver):
            return saver._blocking(saver._arun(op, write=write))
        return saver._run(op, write=write)

    def _call(self, make: Callable[..., Op[T]], *args: Any, write: bool = False) -> T:
        return self._run(make(self.saver.dialect, *args), write)

    def _drive(self, make: Callable[..., retention.Plan[T]], *args: Any) -> T:
        return run(make(self.saver.dialect, *args), lambda step: self._run(*step))

    def _listed(self, config: Any, before: Any, limit: int | None) -> list[CheckpointTuple]:
        return list(self.saver.list(config, before=before, limit=limit))

    def close(self) -> None:
        """Close the saver this manager opened from a URL (a saver you gave stays open)."""
        if self._opener is not None:
            opener, self._opener = self._opener, None
            opener.__exit__(None, None, None)

    def __enter__(self) -> ThreadManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.close()


class AsyncThreadManager(_Threads):
    """Threads of a saver's database, for asyncio: the methods of `ThreadManager`, awaited.
    `source`: a saver, a URL, an `aiosqlite` or `psycopg` async connection, or an
    `AsyncConnectionPool`; it is opened on first use. Close what it opened with
    `aclose()` or `async with`.

    >>> async with AsyncThreadManager("postgresql://app@db/agents") as threads:
    ...     page = await threads.list(user_id="ana@example.com")
    """

    def __init__(self, source: Any, **options: Any) -> None:
        drivers = (
            "aiosqlite.Connection",
            "psycopg.AsyncConnection",
            "psycopg_pool.AsyncConnectionPool",
        )
        if not isinstance(source, (SyncSaver, AsyncSaver, str)) and not _is_a(source, *drivers):
            raise ConfigError(f"AsyncThreadManager needs {_SOURCES}, got {type(source).__name__}")
        self._source, self._options, self._opener = source, options, None
        self.saver = source if isinstance(source, (SyncSaver, AsyncSaver)) else None
        self._lock = asyncio.Lock()

    async def open(self) -> Any:
        """Open the saver (done on first use otherwise); returns it."""
        async with self._lock:
            if self.saver is None:
                source, options = self._source, self._options
                if isinstance(source, str):
                    self._opener = from_url(source, **options)
                    self.saver = await self._opener.__aenter__()
                elif _is_a(source, "aiosqlite.Connection"):
                    from .sqlite import AsyncSqliteSaver

                    self.saver = AsyncSqliteSaver(source, **options)
                else:
                    from .postgres import AsyncPostgresSaver

                    self.saver = AsyncPostgresSaver(source, **options)
        return self.saver

    async def _run(self, op: Op[T], write: bool) -> T:
        saver = self.saver
        if isinstance(saver, SyncSaver):
            return await asyncio.to_thread(saver._run, op, write=write)
        return await saver._arun(op, write=write)

    async def _call(self, make: Callable[..., Op[T]], *args: Any, write: bool = False) -> T:
        saver = self.saver or await self.open()
        return await self._run(make(saver.dialect, *args), write)

    async def _drive(self, make: Callable[..., retention.Plan[T]], *args: Any) -> T:
        saver = self.saver or await self.open()
        return await arun(make(saver.dialect, *args), lambda step: self._run(*step))

    async def _listed(self, config: Any, before: Any, limit: int | None) -> list[CheckpointTuple]:
        saver = self.saver or await self.open()
        return [item async for item in saver.alist(config, before=before, limit=limit)]

    async def aclose(self) -> None:
        """Close the saver this manager opened from a URL (a saver you gave stays open)."""
        if self._opener is not None:
            opener, self._opener = self._opener, None
            await opener.__aexit__(None, None, None)

    async def __aenter__(self) -> AsyncThreadManager:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        await self.aclose()


__all__ = ["AsyncThreadManager", "ThreadManager"]
