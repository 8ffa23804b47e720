"""Engine-independent savers: every LangGraph method, for sync and async engines.

`SyncSaver` runs operations on a blocking connection and offers the `a*` methods by
running the blocking ones in a worker thread. `AsyncSaver` runs them on an async
connection and offers the blocking methods to other threads through its event loop.
Engine adapters supply a dialect, a transaction runner and a row stream, nothing more.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Collection,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack, ExitStack, aclosing, closing
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from typing_extensions import Self

from . import telemetry
from .codec import MAX_EXPANSION, JsonCodec
from .core import ops, records
from .core.dialect import Dialect
from .core.list_steps import Emit, Run, Steps, advance, list_steps
from .core.ttl import TtlDefaults
from .errors import WrongThreadError

if TYPE_CHECKING:
    from .health import Health
    from .threads import AsyncThreadManager, ThreadManager

T = TypeVar("T")

#: Rows fetched per round trip when streaming `list`.
STREAM_CHUNK = 100


class _Base(BaseCheckpointSaver[Any]):
    dialect: ClassVar[Dialect]
    #: Read `list` a chunk at a time, each chunk its own short read (`ops.ListPages`),
    #: instead of streaming one statement (`_stream`) left open between chunks.
    list_in_pages: ClassVar[bool] = False

    #: Secret (bytes, 16 or more) signing the pickles a `pickle_fallback` serializer
    #: makes; without it such values are refused, and stored pickles never read.
    pickle_key: bytes | None = None
    #: Characters of JSON that stored values used more than once may add to a checkpoint
    #: being read; beyond, the read raises DecodeError (a tampered row expanding).
    max_expansion: int = MAX_EXPANSION

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        auto_setup: bool = True,
        pickle_key: bytes | None = None,
        max_expansion: int | None = None,
        default_ttl: Any = None,
        ttl_strategy: str = "delete",
    ) -> None:
        super().__init__(serde=serde)
        #: The ttl of the threads this saver creates (`default_ttl`, a timedelta or
        #: seconds; None: none) and the strategy of a ttl given without one.
        self.ttl_defaults = TtlDefaults.of(default_ttl, ttl_strategy)
        self._ttl = self.ttl_defaults.params
        self.auto_setup = auto_setup
        if pickle_key is not None:
            self.pickle_key = pickle_key
        if max_expansion is not None:
            self.max_expansion = max_expansion
        self._schema_ready = False
        self._codec: tuple[tuple[Any, ...], JsonCodec, ops.ValueCaches] | None = None

    @property
    def is_setup(self) -> bool:
        """Whether this saver has set up (or checked) the schema, as on the official savers."""
        return self._schema_ready

    @property
    def codec(self) -> JsonCodec:
        """The JSON codec for the current `serde` (LangGraph may swap `serde` after init)."""
        return self._decoding()[1]

    @property
    def value_caches(self) -> ops.ValueCaches:
        """Stored values decoded by this saver's reads, kept for the next (see README)."""
        return self._decoding()[2]

    def _decoding(self) -> tuple[tuple[Any, ...], JsonCodec, ops.ValueCaches]:
        cached = self._codec
        settings = (self.serde, self.pickle_key, self.max_expansion)
        if cached is None or any(a is not b for a, b in zip(cached[0], settings, strict=True)):
            codec = JsonCodec(
                self.serde, pickle_key=self.pickle_key, max_expansion=self.max_expansion
            )
            cached = self._codec = (settings, codec, ops.ValueCaches())
        return cached

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> Self:
        """A shallow copy whose serializer also revives `extra_allowlist` (LangGraph calls
        this under a strict msgpack policy); its thread manager works on the copy."""
        clone = super().with_allowlist(extra_allowlist)
        if clone is not self:
            clone.__dict__.pop("threads", None)  # a cached manager of the original
        return clone  # type: ignore[return-value]

    def get_next_version(self, current: Any, channel: None = None) -> Any:
        return records.next_version(current)

    def put_op(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> ops.Op[RunnableConfig]:
        """The operation `put` runs (also composed into batches by the importers)."""
        codec, caches = self._decoding()[1:]
        return ops.put(
            self.dialect, codec, config, checkpoint, metadata, new_versions, self._ttl, caches
        )

    def put_writes_op(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> ops.Op[None]:
        """The operation `put_writes` runs."""
        return ops.put_writes(
            self.dialect, self.codec, config, writes, task_id, task_path, self._ttl
        )

    def _list_steps(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Steps:
        plan = ops.list_plan(self.dialect, config, filter, before, limit)
        return list_steps(
            self.dialect,
            self.codec,
            plan,
            self.value_caches,
            schema_ready=self._schema_ready,
            in_pages=self.list_in_pages,
            size=STREAM_CHUNK,
        )

    # -- health (health.py) ---------------------------------------------------------------
    def ping(self, timeout: float = 2.0) -> Health:
        """A health report within `timeout` s: latency, versions, pool statistics; a
        database that cannot answer is `ok=False` with the reason, not an exception."""
        from .health import ping

        return ping(self, timeout)

    async def aping(self, timeout: float = 2.0) -> Health:
        """`ping`, awaitable."""
        from .health import aping

        return await aping(self, timeout)


class SyncSaver(_Base):
    """A saver over a blocking connection. Subclasses implement `_transaction` and `_stream`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._setup_lock = threading.Lock()

    @cached_property
    def threads(self) -> ThreadManager:
        """Threads, time travel and retention on this saver's database."""
        from .threads import ThreadManager

        return ThreadManager(self)

    # -- adapter hooks ---------------------------------------------------------------
    def _transaction(self, op: ops.Op[T], *, write: bool) -> T:
        """Run `op` in one transaction (a write transaction if `write`)."""
        raise NotImplementedError

    def _stream(self, sql: str, params: ops.Params) -> Generator[Sequence[Any], None, None]:
        """Yield the rows of one SELECT without loading them all at once (unless
        `list_in_pages`)."""
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------------------
    def _run(self, op: ops.Op[T], *, write: bool = False, traced: bool = False) -> T:
        if telemetry.enabled and not traced:  # spans and metrics (telemetry.py)
            return telemetry.run(self, op, write, self._run)
        if not self._schema_ready:
            self.setup() if self.auto_setup else self._check_schema()
        return self._transaction(op, write=write)

    def run_op(self, op: ops.Op[T], *, write: bool = False) -> T:
        """Run a core operation in one transaction (how the thread managers and tools
        reach the database)."""
        return self._run(op, write=write)

    async def arun_op(self, op: ops.Op[T], *, write: bool = False) -> T:
        """`run_op` in a worker thread."""
        return await asyncio.to_thread(self._run, op, write=write)

    def setup(self) -> None:
        """Create or migrate the schema. Idempotent, safe across processes; runs on first use."""
        with self._setup_lock:
            self._transaction(ops.ensure_schema(self.dialect, create=True), write=True)
            self._schema_ready = True

    def _check_schema(self) -> None:
        self._transaction(ops.ensure_schema(self.dialect, create=False), write=False)
        self._schema_ready = True

    # -- the LangGraph contract ----------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(ops.get_tuple(self.dialect, self.codec, config, self.value_caches))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Generator[CheckpointTuple, None, None]:
        items = self._list(config, filter, before, limit)
        return telemetry.traced_list(self, items, config) if telemetry.enabled else items

    def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Generator[CheckpointTuple, None, None]:
        steps = self._list_steps(config, filter, before, limit)
        with ExitStack() as stack:
            rows: Generator[Sequence[Any], None, None] | None = None
            reply: Any = None
            while (step := advance(steps, reply)) is not None:
                if isinstance(step, Emit):
                    yield from step.items
                    reply = None
                elif isinstance(step, Run):
                    reply = self._run(step.op)
                else:
                    rows = rows or stack.enter_context(closing(self._stream(step.sql, step.params)))
                    reply = _take(rows, step.size)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self.put_op(config, checkpoint, metadata, new_versions), write=True)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self.put_writes_op(config, writes, task_id, task_path), write=True)

    def delete_thread(self, thread_id: str) -> None:
        self._run(ops.delete_thread(self.dialect, thread_id), write=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run(ops.delete_for_runs(self.dialect, run_ids), write=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(ops.copy_thread(self.dialect, source_thread_id, target_thread_id), write=True)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run(ops.prune(self.dialect, thread_ids, strategy), write=True)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._run(ops.delta_history(self.dialect, self.codec, config, channels))

    def check_references(self, thread_id: str | None = None) -> builtins.list[str]:
        """Problems with the stored values of a thread (or all): empty when every value
        referred to exists and every stored value is referred to. Reads it all."""
        return self._run(ops.reference_problems(self.dialect, thread_id))

    # -- the async API, run off the event loop ---------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        rows = self.list(config, filter=filter, before=before, limit=limit)
        try:
            while chunk := await asyncio.to_thread(_take, rows, STREAM_CHUNK):
                for item in chunk:
                    yield item
        finally:  # an abandoned iteration releases its cursor now, not when collected
            await asyncio.to_thread(rows.close)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(
            self.get_delta_channel_history, config=config, channels=channels
        )

    async def asetup(self) -> None:
        await asyncio.to_thread(self.setup)

    async def acheck_references(self, thread_id: str | None = None) -> builtins.list[str]:
        return await asyncio.to_thread(self.check_references, thread_id)


class AsyncSaver(_Base):
    """A saver over an async connection. Subclasses implement `_atransaction` and `_astream`.

    Its blocking methods work from any thread but the event loop's own: they hand the
    call to the loop the saver was created on and wait for it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loop = asyncio.get_running_loop()
        self._setup_lock = asyncio.Lock()

    @cached_property
    def threads(self) -> AsyncThreadManager:
        """Threads, time travel and retention on this saver's database (awaitable)."""
        from .threads import AsyncThreadManager

        return AsyncThreadManager(self)

    # -- adapter hooks ---------------------------------------------------------------
    async def _atransaction(self, op: ops.Op[T], *, write: bool) -> T:
        """Run `op` in one transaction (a write transaction if `write`)."""
        raise NotImplementedError

    def _astream(self, sql: str, params: ops.Params) -> AsyncGenerator[Sequence[Any], None]:
        """Yield the rows of one SELECT without loading them all at once (unless
        `list_in_pages`)."""
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------------------
    async def _arun(self, op: ops.Op[T], *, write: bool = False, traced: bool = False) -> T:
        if telemetry.enabled and not traced:  # spans and metrics (telemetry.py)
            return await telemetry.arun(self, op, write, self._arun)
        if not self._schema_ready:
            await (self.setup() if self.auto_setup else self._acheck_schema())
        return await self._atransaction(op, write=write)

    async def arun_op(self, op: ops.Op[T], *, write: bool = False) -> T:
        """Run a core operation in one transaction (how the thread managers and tools
        reach the database)."""
        return await self._arun(op, write=write)

    def run_op(self, op: ops.Op[T], *, write: bool = False) -> T:
        """`arun_op` from another thread than the event loop's."""
        return self._blocking(self._arun(op, write=write))

    async def setup(self) -> None:
        """Create or migrate the schema (awaitable, like the official async savers').
        Idempotent, safe across processes; runs on first use."""
        async with self._setup_lock:
            await self._atransaction(ops.ensure_schema(self.dialect, create=True), write=True)
            self._schema_ready = True

    async def _acheck_schema(self) -> None:
        await self._atransaction(ops.ensure_schema(self.dialect, create=False), write=False)
        self._schema_ready = True

    def _blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise WrongThreadError(
                f"{type(self).__name__}'s blocking methods cannot run on its event loop's "
                "thread: use the async methods (ainvoke, aget_tuple, ...) or call from "
                "another thread"
            )
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # -- the LangGraph contract ----------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(ops.get_tuple(self.dialect, self.codec, config, self.value_caches))

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncGenerator[CheckpointTuple, None]:
        items = self._alist(config, filter, before, limit)
        return telemetry.atraced_list(self, items, config) if telemetry.enabled else items

    async def _alist(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncGenerator[CheckpointTuple, None]:
        steps = self._list_steps(config, filter, before, limit)
        async with AsyncExitStack() as stack:
            rows: AsyncGenerator[Sequence[Any], None] | None = None
            reply: Any = None
            while (step := advance(steps, reply)) is not None:
                if isinstance(step, Emit):
                    for item in step.items:
                        yield item
                    reply = None
                elif isinstance(step, Run):
                    reply = await self._arun(step.op)
                else:
                    if rows is None:
                        rows = self._astream(step.sql, step.params)
                        await stack.enter_async_context(aclosing(rows))
                    reply = await _atake(rows, step.size)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        op = self.put_op(config, checkpoint, metadata, new_versions)
        return await self._arun(op, write=True)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self.put_writes_op(config, writes, task_id, task_path), write=True)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(ops.delete_thread(self.dialect, thread_id), write=True)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._arun(ops.delete_for_runs(self.dialect, run_ids), write=True)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        op = ops.copy_thread(self.dialect, source_thread_id, target_thread_id)
        await self._arun(op, write=True)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._arun(ops.prune(self.dialect, thread_ids, strategy), write=True)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._arun(ops.delta_history(self.dialect, self.codec, config, channels))

    async def acheck_references(self, thread_id: str | None = None) -> builtins.list[str]:
        """Problems with the stored values of a thread (or all): empty when every value
        referred to exists and every stored value is referred to. Reads it all."""
        return await self._arun(ops.reference_problems(self.dialect, thread_id))

    async def asetup(self) -> None:
        """The same as `await setup()`."""
        await self.setup()

    # -- the blocking API, for other threads ---------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._blocking(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        rows = self.alist(config, filter=filter, before=before, limit=limit)
        try:
            while chunk := self._blocking(_atake(rows, STREAM_CHUNK)):
                yield from chunk
        finally:
            if not self.loop.is_closed():
                asyncio.run_coroutine_threadsafe(rows.aclose(), self.loop)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._blocking(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._blocking(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._blocking(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._blocking(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._blocking(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._blocking(self.aprune(thread_ids, strategy=strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._blocking(self.aget_delta_channel_history(config=config, channels=channels))

    def check_references(self, thread_id: str | None = None) -> builtins.list[str]:
        return self._blocking(self.acheck_references(thread_id))


def _take(rows: Iterator[T], n: int) -> list[T]:
    out: list[T] = []
    for row in rows:
        out.append(row)
        if len(out) == n:
            break
    return out


async def _atake(rows: AsyncIterator[T], n: int) -> list[T]:
    out: list[T] = []
    async for row in rows:
        out.append(row)
        if len(out) == n:
            break
    return out
