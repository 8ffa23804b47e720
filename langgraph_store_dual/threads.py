"""Thread managers: the thread registry, time travel and retention on a saver's database.

`ThreadManager` (blocking) and `AsyncThreadManager` (awaitable) share every method: each
is written once, as an `_operation` naming a sans-I/O operation of `core.threads`,
`core.history` or `core.retention`, and the manager it is read from runs it, blocking or
awaited (type checkers see `T` on one, an awaitable of `T` on the other). Reach one as
`saver.threads`, or open one alone on a URL, a connection or a pool.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MethodType, TracebackType
from typing import (
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
    runtime_checkable,
)

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from . import registry
from .codec import JsonCodec
from .core import history, retention, search, usage
from .core import threads as ops
from .core import ttl as ttl_ops
from .core.dialect import Dialect
from .core.history import CheckpointDiff
from .core.ops import Op
from .core.thread_model import Removed, Thread, ThreadPage, ThreadStats
from .core.usage import Usage
from .errors import ConfigError

T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)
P = ParamSpec("P")
Age = timedelta | float
#: Checkpoints, newest first (`list` is a method name in the classes below).
Checkpoints = list[CheckpointTuple]
When = datetime | date | None

_SOURCES = "a saver, a database URL, a connection or a pool"


class _Lister(Protocol[R_co]):
    """A saver's `list` (R: an iterator) or `alist` (an async iterator), as called here."""

    def __call__(
        self,
        config: RunnableConfig | None,
        *,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> R_co: ...


@runtime_checkable
class Saver(Protocol):
    """What the managers need of a saver: both savers of every engine offer it."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def codec(self) -> JsonCodec: ...

    def run_op(self, op: Op[T], *, write: bool = False) -> T: ...

    async def arun_op(self, op: Op[T], *, write: bool = False) -> T: ...

    @property
    def list(self) -> _Lister[Iterator[CheckpointTuple]]: ...

    @property
    def alist(self) -> _Lister[AsyncIterator[CheckpointTuple]]: ...


class _Task(Generic[T]):
    """What one manager method asks of the saver, run blocking or awaited."""

    def run(self, saver: Saver) -> T:
        raise NotImplementedError

    async def arun(self, saver: Saver) -> T:
        raise NotImplementedError


@dataclass(frozen=True)
class _Plan(_Task[T]):
    """A plan (`retention.Plan`) made from the saver's dialect and codec: each operation
    it yields runs in its own transaction."""

    make: Callable[[Dialect, JsonCodec], retention.Plan[T]]

    def run(self, saver: Saver) -> T:
        plan = self.make(saver.dialect, saver.codec)
        try:
            op, write = next(plan)
            while True:
                op, write = plan.send(saver.run_op(op, write=write))
        except StopIteration as done:
            result: T = done.value
            return result

    async def arun(self, saver: Saver) -> T:
        plan = self.make(saver.dialect, saver.codec)
        try:
            op, write = next(plan)
            while True:
                op, write = plan.send(await saver.arun_op(op, write=write))
        except StopIteration as done:
            result: T = done.value
            return result


@dataclass(frozen=True)
class _Listing(_Task[Checkpoints]):
    """The saver's `list` (or `alist`), collected."""

    config: RunnableConfig
    before: RunnableConfig | None
    limit: int | None

    def run(self, saver: Saver) -> Checkpoints:
        return list(saver.list(self.config, before=self.before, limit=self.limit))

    async def arun(self, saver: Saver) -> Checkpoints:
        return [
            item async for item in saver.alist(self.config, before=self.before, limit=self.limit)
        ]


def _once(op: Op[T], write: bool) -> retention.Plan[T]:
    result: T = yield op, write
    return result


def _op(make: Callable[..., Op[T]], *args: Any, write: bool = False) -> _Task[T]:
    """`make(dialect, *args)`, one operation in one transaction."""
    return _Plan(lambda dialect, _: _once(make(dialect, *args), write))


def _decoding(make: Callable[..., Op[T]], *args: Any) -> _Task[T]:
    """`make(dialect, codec, *args)`, one read in one transaction."""
    return _Plan(lambda dialect, codec: _once(make(dialect, codec, *args), False))


def _plan(make: Callable[..., retention.Plan[T]], *args: Any) -> _Task[T]:
    """The plan `make(dialect, *args)`."""
    return _Plan(lambda dialect, _: make(dialect, *args))


class _operation(Generic[P, T]):
    """A manager method written once: the body says which task to run, the manager it is
    read from runs it (`ThreadManager`: returns `T`; `AsyncThreadManager`: a coroutine)."""

    def __init__(self, body: Callable[Concatenate[Any, P], _Task[T]]) -> None:
        def call(manager: _Threads, /, *args: P.args, **kwargs: P.kwargs) -> Any:
            return manager._perform(body(manager, *args, **kwargs))

        functools.update_wrapper(call, body)
        # what `help()` and `inspect` show: the body's parameters, not its task type
        signature = inspect.signature(body).replace(return_annotation=inspect.Signature.empty)
        call.__signature__ = signature  # type: ignore[attr-defined]
        self._call = call

    @overload
    def __get__(self, manager: None, owner: type[Any]) -> Callable[Concatenate[Any, P], Any]: ...

    @overload
    def __get__(self, manager: ThreadManager, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, manager: AsyncThreadManager, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, manager: _Threads | None, owner: type[Any]) -> Any:
        return self._call if manager is None else MethodType(self._call, manager)


class _Threads:
    """The methods of both managers. In `AsyncThreadManager` each returns an awaitable."""

    saver: Any

    def _perform(self, task: _Task[T]) -> Any:
        raise NotImplementedError

    # -- the registry ------------------------------------------------------------------
    @_operation
    def create(
        self,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: Age | None = ops.UNSET,
        ttl_strategy: str = ops.UNSET,
    ) -> _Task[Thread]:
        """A new thread (id generated unless given); ThreadExistsError if it is taken.
        `ttl` (timedelta or seconds; default: the saver's `default_ttl`, None: none) and
        `ttl_strategy` ("delete" or "keep_latest"; default: the saver's): see `sweep`."""
        defaults = self.saver.ttl_defaults
        args = (thread_id, user_id, title, metadata, ttl, ttl_strategy)
        return _op(lambda d: ttl_ops.create(d, defaults, *args), write=True)

    @_operation
    def get(self, thread_id: str) -> _Task[Thread | None]:
        """The thread, or None if there is none (the methods acting on a thread raise
        NotFoundError)."""
        return _op(ops.get, thread_id)

    @_operation
    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        run_state: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 20,
        cursor: str | None = None,
        expires_within: Age | None = None,
        thread_ids: Sequence[str] | None = None,
        created_after: When = None,
        created_before: When = None,
        updated_after: When = None,
        updated_before: When = None,
        sort_by: str = "updated_at",
        sort_order: str = "desc",
    ) -> _Task[ThreadPage]:
        """Threads by latest activity, newest first (`sort_by="created_at"`,
        `sort_order="asc"` to change). Filters: owner, status (active, archived), run
        state (idle, interrupted, error), metadata (each key equal), `expires_within` (a
        ttl expiring within that long from now; 0: expired, not yet swept), ids, and time
        ranges (aware datetimes or dates; `*_after` inclusive, `*_before` exclusive). Pass
        `next_cursor` back, with the same filters and sort, for the next page."""
        found = search.Search(
            thread_ids, created_after, created_before, updated_after, updated_before
        )
        order = search.sort(sort_by, sort_order)
        args = (user_id, status, run_state, metadata, limit, cursor, expires_within, found, order)
        return _op(ops.page, *args)

    @_operation
    def count(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        run_state: str | None = None,
        metadata: dict[str, Any] | None = None,
        expires_within: Age | None = None,
        thread_ids: Sequence[str] | None = None,
        created_after: When = None,
        created_before: When = None,
        updated_after: When = None,
        updated_before: When = None,
    ) -> _Task[int]:
        """How many threads `list` finds with the same filters."""
        found = search.Search(
            thread_ids, created_after, created_before, updated_after, updated_before
        )
        return _op(ops.count, user_id, status, run_state, metadata, expires_within, found)

    @_operation
    def update(
        self,
        thread_id: str,
        *,
        title: Any = ops.UNSET,
        metadata: dict[str, Any] | None = None,
        user_id: Any = ops.UNSET,
        ttl: Age | None = ops.UNSET,
        ttl_strategy: str = ops.UNSET,
    ) -> _Task[Thread]:
        """Rename (`title`, None clears it), merge `metadata` (a key set to None is
        removed), give the thread to `user_id` (None: to no one), set its `ttl` (None
        removes it) or `ttl_strategy`; a ttl counts from now."""
        defaults = self.saver.ttl_defaults
        args = (thread_id, title, metadata, user_id, ttl, ttl_strategy)
        return _op(lambda d: ttl_ops.update(d, defaults, *args), write=True)

    @_operation
    def archive(self, thread_id: str) -> _Task[Thread]:
        return _op(ops.update, thread_id, ops.UNSET, None, "archived", write=True)

    @_operation
    def unarchive(self, thread_id: str) -> _Task[Thread]:
        return _op(ops.update, thread_id, ops.UNSET, None, "active", write=True)

    @_operation
    def copy(self, thread_id: str, new_thread_id: str | None = None) -> _Task[Thread]:
        """A new thread with the whole history (checkpoints and writes) of `thread_id`."""
        return _op(ops.copy, thread_id, new_thread_id, write=True)

    @_operation
    def delete(self, thread_id: str) -> _Task[bool]:
        """Delete a thread, its checkpoints and writes; whether the thread existed."""
        return _op(ops.delete, thread_id, write=True)

    @_operation
    def stats(self, thread_id: str) -> _Task[ThreadStats]:
        """Counts and stored bytes of a thread: checkpoints, interned values, writes, and
        by channel."""
        return _op(ops.stats, thread_id)

    @_operation
    def usage(
        self,
        thread_id: str | None = None,
        *,
        user_id: str | None = None,
        since: When = None,
        until: When = None,
        group_by: Sequence[str] = ("model",),
        prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> _Task[builtins.list[Usage]]:
        """Token usage of the AI messages stored in writes (of a thread, of a user's
        threads, or all), each counted once, in [`since`, `until`) by when it was first
        written, grouped by any of "model", "thread", "user", "day"; priced per token
        with `prices={"model": {"input": p, "output": p}}` (None for an unpriced model)."""
        args = (thread_id, user_id, since, until, group_by, prices)
        return _op(usage.usage, *args)

    # -- time travel -------------------------------------------------------------------
    @_operation
    def history(
        self,
        thread_id: str,
        *,
        limit: int | None = 20,
        before: RunnableConfig | str | None = None,
        checkpoint_ns: str = "",
    ) -> _Task[Checkpoints]:
        """A page of a thread's checkpoints, newest first (`limit=None`: all of them); the
        next page is `before=page[-1].config`. Streams through the saver's `list`."""
        return _Listing(*history.history_args(thread_id, limit, before, checkpoint_ns))

    @_operation
    def lineage(self, config: RunnableConfig, *, limit: int | None = None) -> _Task[Checkpoints]:
        """The checkpoint `config` names (default: the latest) and its parent chain,
        newest first, in one query."""
        return _decoding(history.lineage, config, limit)

    @_operation
    def diff(self, config_a: RunnableConfig, config_b: RunnableConfig) -> _Task[CheckpointDiff]:
        """Which channels changed from checkpoint `config_a` to `config_b`, and how."""
        return _decoding(history.diff, config_a, config_b)

    @_operation
    def fork(self, config: RunnableConfig, new_thread_id: str | None = None) -> _Task[Thread]:
        """A new thread holding the checkpoint `config` names and its ancestors: resuming
        it continues from that checkpoint, leaving the source thread as it is."""
        return _op(history.fork, config, new_thread_id, write=True)

    # -- retention -----------------------------------------------------------------------
    @_operation
    def prune_older_than(
        self, age: Age, *, batch_size: int = retention.DEFAULT_BATCH
    ) -> _Task[Removed]:
        """Delete checkpoints older than `age` (timedelta or seconds), keeping each
        thread's latest and the ancestors `DeltaChannel`s need; `batch_size` threads per
        transaction."""
        return _plan(retention.prune_older_than, age, batch_size)

    @_operation
    def keep_last(self, n: int, *, batch_size: int = retention.DEFAULT_BATCH) -> _Task[Removed]:
        """Keep the last `n` checkpoints of each thread and namespace, and the ancestors
        their `DeltaChannel`s need."""
        return _plan(retention.keep_last, n, batch_size)

    @_operation
    def delete_idle_threads(
        self, age: Age, *, batch_size: int = retention.DEFAULT_BATCH
    ) -> _Task[Removed]:
        """Delete the threads with no activity for `age`, with their checkpoints and writes."""
        return _plan(retention.delete_idle_threads, age, batch_size)

    # -- time-to-live and erasure --------------------------------------------------------
    @_operation
    def sweep(
        self, *, limit: int | None = None, batch_size: int = retention.DEFAULT_BATCH
    ) -> _Task[Removed]:
        """Apply expired ttls (a thread expires at its last activity plus its ttl): a
        `delete` thread goes with its checkpoints and writes, a `keep_latest` one keeps
        only what its latest checkpoints need. At most `limit` threads (None: all expired
        now), `batch_size` per transaction; a thread written to meanwhile stays.
        `Removed.threads`: those deleted or pruned."""
        return _plan(ttl_ops.sweep, limit, batch_size)

    @_operation
    def delete_user(
        self, user_id: str, *, batch_size: int = retention.DEFAULT_BATCH
    ) -> _Task[Removed]:
        """Delete every thread `user_id` owns, with its checkpoints, writes and stored
        values, `batch_size` threads per transaction."""
        return _plan(ttl_ops.delete_user, user_id, batch_size)


def _engine_of(source: object, *, sync: bool) -> registry.Engine | None:
    return None if isinstance(source, str) else registry.engine_for_connection(source, sync=sync)


class ThreadManager(_Threads):
    """Threads of a saver's database, blocking. `source`: a saver (sync, or async from
    another thread), a URL, a `sqlite3` or `psycopg` connection, or a `psycopg_pool`
    pool; `options` go to the saver it opens. Close what it opened with `close()` or `with`.

    >>> with ThreadManager("sqlite:///agent.db") as threads:
    ...     page = threads.list(user_id="ana@example.com")
    """

    #: The saver (the engine's own class: it also serves as a graph's checkpointer).
    saver: Any

    def __init__(self, source: Saver | str | Any, **options: Any) -> None:
        self._opener: AbstractContextManager[Any] | None = None
        if isinstance(source, Saver):
            self.saver = source
        elif isinstance(source, str):
            opener: Any = registry.engine_for_url(source).open_url(source, options, sync=True)
            self.saver = opener.__enter__()
            self._opener = opener
        elif engine := _engine_of(source, sync=True):
            self.saver = engine.saver_class(sync=True)(source, **options)
        else:
            raise ConfigError(f"ThreadManager needs {_SOURCES}, got {type(source).__name__}")

    def _perform(self, task: _Task[T]) -> T:
        return task.run(self.saver)

    def close(self) -> None:
        """Close the saver this manager opened from a URL (a saver you gave stays open)."""
        if self._opener is not None:
            opener, self._opener = self._opener, None
            opener.__exit__(None, None, None)

    def __enter__(self) -> ThreadManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
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

    #: The saver once opened (the engine's own class: it also serves as a checkpointer).
    saver: Any

    def __init__(self, source: Saver | str | Any, **options: Any) -> None:
        saver = source if isinstance(source, Saver) else None
        engine = _engine_of(source, sync=False)
        if saver is None and engine is None and not isinstance(source, str):
            raise ConfigError(f"AsyncThreadManager needs {_SOURCES}, got {type(source).__name__}")
        self._source, self._engine, self._options = source, engine, options
        self._url = source if isinstance(source, str) else None
        self._opener: AbstractAsyncContextManager[Any] | None = None
        self.saver = saver
        self._lock = asyncio.Lock()

    async def open(self) -> Any:
        """Open the saver (done on first use otherwise); returns it."""
        async with self._lock:
            if self.saver is None:
                self.saver = await self._open()
        return self.saver

    async def _open(self) -> Saver:
        if self._url is None:
            assert self._engine is not None  # checked in __init__
            saver: Saver = self._engine.saver_class(sync=False)(self._source, **self._options)
            return saver
        engine = registry.engine_for_url(self._url)
        opener: Any = engine.open_url(self._url, self._options, sync=False)
        saver = await opener.__aenter__()
        self._opener = opener
        return saver

    async def _perform(self, task: _Task[T]) -> T:
        return await task.arun(self.saver or await self.open())

    async def aclose(self) -> None:
        """Close the saver this manager opened from a URL (a saver you gave stays open)."""
        if self._opener is not None:
            opener, self._opener = self._opener, None
            await opener.__aexit__(None, None, None)

    async def __aenter__(self) -> AsyncThreadManager:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = ["AsyncThreadManager", "Saver", "ThreadManager"]
