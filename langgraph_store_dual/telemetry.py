"""OpenTelemetry spans and metrics for every saver and thread-manager operation.

Off by default, and then free: the savers' hooks read one module attribute (`enabled`)
and OpenTelemetry is not even imported. `enable()` (or `LGSD_OTEL=1` in the environment)
switches it on; it needs opentelemetry-api (the `otel` extra) and reports to the global
tracer and meter providers unless given others. Thread ids are recorded only with
`enable(thread_ids=True)` (or `LGSD_OTEL_THREAD_IDS=1`), and so are error messages,
which may name threads; otherwise an error is recorded by its type alone.

Every operation of a saver or thread manager passes through the savers' `_run`/`_arun`,
which call `run`/`arun` here when enabled; `list`/`alist` call `traced_list` /
`atraced_list`. Names, attributes and the metrics: docs/operations-telemetry.md.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from types import CodeType
from typing import Any, TypeVar

from .core.stmt import Op, Rows
from .errors import ConfigError
from .health import ENGINES, pool_of

T = TypeVar("T")

#: Whether telemetry is on: the one thing the savers' hooks read when it is off.
enabled = False

#: The instrumentation scope's name.
SCOPE = "langgraph_store_dual"

#: Bucket boundaries (seconds) OpenTelemetry's conventions advise for `db.client.*` durations.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

#: Operations that only serve `list` (its span covers them): (module, generator name).
_INNER = frozenset(
    {
        (f"{__package__}.core.list_steps", "_nothing"),
        (f"{__package__}.core.listing", "_read"),
        (f"{__package__}.core.listing", "check"),
        (f"{__package__}.core.ops", "select"),
        (f"{__package__}.core.values", "load_values"),
    }
)

#: Name prefixes of the operations defined in these modules: the thread managers'.
_PREFIXES = {
    f"{__package__}.core.threads": "threads.",
    f"{__package__}.core.history": "threads.",
    f"{__package__}.core.ttl": "threads.",
    f"{__package__}.core.usage": "threads.",
    f"{__package__}.core.retention": "retention.",
}

#: Operations recorded under the name of the method that runs them.
_METHODS = {
    "delta_history": "get_delta_channel_history",
    "reference_problems": "check_references",
    "threads.page": "threads.list",
}

_names: dict[CodeType, str | None] = {}


def operation_name(op: Any) -> str | None:
    """The name an operation (a generator from `core`) is recorded under, or None for
    the steps of a `list`: its generator function's name, prefixed by its module's."""
    code = getattr(op, "gi_code", None)
    if code is not None and code in _names:
        return _names[code]
    function: str = getattr(op, "__name__", None) or "operation"
    frame = getattr(op, "gi_frame", None)
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    name: str | None = None
    if (module, function) not in _INNER:
        name = _PREFIXES.get(module, "") + function.lstrip("_")
        name = _METHODS.get(name, name)
    if code is not None:
        _names[code] = name
    return name


def _thread_of(config: Any) -> str | None:
    conf = config.get("configurable") if isinstance(config, dict) else None
    return _id(conf.get("thread_id")) if isinstance(conf, dict) else None


def _id(value: Any) -> str | None:
    ok = isinstance(value, (str, int)) and not isinstance(value, bool)
    return str(value) if ok or type(value).__name__ == "UUID" else None


def thread_of(op: Any) -> str | None:
    """The thread an operation acts on, read from its arguments (`config`, `thread_id`,
    `source_thread_id`), or None (several threads, or none)."""
    frame = getattr(op, "gi_frame", None)
    if frame is None:
        return None
    args = frame.f_locals
    if "config" in args:
        return _thread_of(args["config"])
    return _id(args.get("thread_id", args.get("source_thread_id")))


def _size(values: Any) -> int:
    """Characters of text and bytes of binary values in `values` and the lists in it."""
    if isinstance(values, dict):
        values = values.values()
    n = 0
    for v in values:
        if isinstance(v, (str, bytes, bytearray, memoryview)):
            n += len(v)
        elif isinstance(v, (list, tuple)):
            n += _size(v)
    return n


class _Telemetry:
    """The tracer and instruments `enable()` made, and the savers whose pools it observes."""

    def __init__(self, thread_ids: bool, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.thread_ids = thread_ids
        self.context, self.trace = context, trace
        self.client, self.status, self.error_code = SpanKind.CLIENT, Status, StatusCode.ERROR
        self.tracer = trace.get_tracer(SCOPE, _version(), tracer_provider)
        meter = metrics.get_meter(SCOPE, _version() or "", meter_provider)
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of saver and thread-manager operations",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.errors = meter.create_counter(
            "langgraph_store_dual.errors",
            unit="{error}",
            description="Operations that failed, by error.type",
        )
        self.savers: weakref.WeakSet[Any] = weakref.WeakSet()
        observe = self._observer
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            [observe(lambda s: s["pool_available"], state="idle"),
             observe(lambda s: s["pool_size"] - s["pool_available"], state="used")],
            unit="{connection}",
            description="Connections of the savers' pools, by state",
        )  # fmt: skip
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            [observe(lambda s: s["pool_max"])],
            unit="{connection}",
            description="Most connections a pool may open",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            [observe(lambda s: s.get("requests_waiting", 0))],
            unit="{request}",
            description="Calls waiting for a pooled connection",
        )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            [observe(lambda s: s.get("requests_errors", 0))],
            unit="{timeout}",
            description="Requests for a pooled connection that failed (timeouts)",
        )

    def watch(self, saver: Any) -> None:
        """Observe the pool of `saver`, if it has one, from now on."""
        if saver not in self.savers and pool_of(saver) is not None:
            self.savers.add(saver)

    def pools(self) -> dict[tuple[str, str], dict[str, int]]:
        """Statistics of the pools observed, summed per engine and pool name."""
        totals: dict[tuple[str, str], dict[str, int]] = {}
        seen: set[int] = set()
        for saver in list(self.savers):
            pool = pool_of(saver)
            if pool is None or id(pool) in seen:
                continue
            seen.add(id(pool))
            key = (ENGINES.get(saver.dialect.name, saver.dialect.name), str(pool.name))
            total = totals.setdefault(key, {})
            for stat, value in pool.get_stats().items():
                total[stat] = total.get(stat, 0) + int(value)
        return totals

    def _observer(self, measure: Callable[[dict[str, int]], int], **extra: str) -> Any:
        from opentelemetry.metrics import Observation

        labels = {f"db.client.connection.{k}": v for k, v in extra.items()}

        def callback(options: Any) -> Iterable[Any]:
            if _state is not self:  # disabled, or enabled again with other settings
                return []
            return [
                Observation(
                    measure(stats),
                    {"db.system.name": system, "db.client.connection.pool.name": name, **labels},
                )
                for (system, name), stats in self.pools().items()
            ]

        return callback


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph-store-dual")
    except PackageNotFoundError:  # run from a source tree
        return None


_state: _Telemetry | None = None


def enable(
    *, thread_ids: bool = False, tracer_provider: Any = None, meter_provider: Any = None
) -> None:
    """Record spans and metrics for every operation from now on (calling it again
    replaces the settings). `thread_ids`: add each operation's thread id, and error
    messages. Providers default to OpenTelemetry's global ones."""
    global enabled, _state
    try:
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "telemetry needs OpenTelemetry: pip install 'langgraph-store-dual[otel]'"
        ) from exc
    _state = _Telemetry(bool(thread_ids), tracer_provider, meter_provider)
    enabled = True


def disable() -> None:
    """Stop recording: operations cost nothing again."""
    global enabled, _state
    enabled = False
    _state = None


class _Call:
    """One operation: its span, what it sent and received, and its metrics at the end."""

    __slots__ = ("attrs", "cache", "received", "rows", "sent", "span", "started", "statements", "t")

    def __init__(self, t: _Telemetry, saver: Any, name: str, thread_id: str | None) -> None:
        t.watch(saver)
        system = ENGINES.get(saver.dialect.name, saver.dialect.name)
        self.t = t
        self.attrs: dict[str, Any] = {
            "db.system.name": system,
            "db.system": system,
            "db.operation.name": name,
        }
        span_attrs = dict(self.attrs)
        if t.thread_ids and thread_id is not None:
            span_attrs["langgraph_store_dual.thread_id"] = thread_id
        self.span = t.tracer.start_span(f"{name} {system}", kind=t.client, attributes=span_attrs)
        self.rows = self.statements = self.sent = self.received = 0
        self.cache: tuple[Any, int] | None = None
        if name == "get_tuple" and thread_id is not None and self.span.is_recording():
            texts = saver.value_caches.get(thread_id)  # the read asks for it too, next
            self.cache = (texts, len(texts))
        self.started = time.perf_counter()

    def counting(self, op: Op[T]) -> Op[T]:
        """`op`, counting its statements, rows and payload (when the span records)."""
        return self._count(op) if self.span.is_recording() else op

    def _count(self, op: Op[T]) -> Op[T]:
        try:
            stmt = next(op)
            while True:
                self.statements += 1
                self.sent += _size(stmt.params)
                rows: Rows = yield stmt
                self.rows += len(rows)
                self.received += sum(_size(row) for row in rows)
                stmt = op.send(rows)
        except StopIteration as done:
            result: T = done.value
            return result

    def failed(self, exc: BaseException) -> None:
        kind = type(exc).__qualname__
        self.attrs["error.type"] = kind
        span = self.span
        span.set_attribute("error.type", kind)
        if isinstance(code := getattr(exc, "sqlstate", None), str):
            span.set_attribute("db.response.status_code", code)
        if self.t.thread_ids:
            span.record_exception(exc)
            span.set_status(self.t.status(self.t.error_code, f"{kind}: {exc}"))
        else:  # messages may name threads: the type alone
            full = f"{type(exc).__module__}.{kind}"
            span.add_event("exception", {"exception.type": full})
            span.set_status(self.t.status(self.t.error_code, kind))
        self.t.errors.add(1, self.attrs)

    def finish(self, seconds: float | None = None) -> None:
        """Record the metrics (`seconds`: the time the operation took, if not all since
        it started) and end the span."""
        elapsed = time.perf_counter() - self.started if seconds is None else seconds
        self.t.duration.record(elapsed, self.attrs)
        span = self.span
        if span.is_recording():
            found: dict[str, int] = {"db.response.returned_rows": self.rows}
            if self.statements:
                found["langgraph_store_dual.statements"] = self.statements
                found["langgraph_store_dual.sent_size"] = self.sent
                found["langgraph_store_dual.received_size"] = self.received
            if self.cache is not None:
                texts, known = self.cache
                found["langgraph_store_dual.cache.values_known"] = known
                found["langgraph_store_dual.cache.values_fetched"] = len(texts) - known
            span.set_attributes(found)
        span.end()


def _start(saver: Any, op: Any) -> _Call | None:
    t = _state
    name = operation_name(op) if t is not None else None
    if t is None or name is None:
        return None
    wanted = t.thread_ids or name == "get_tuple"  # recorded, or for the cache's numbers
    return _Call(t, saver, name, thread_of(op) if wanted else None)


def run(saver: Any, op: Op[T], write: bool, call: Callable[..., T]) -> T:
    """`call(op, write=write, traced=True)` (a saver's `_run`) in a span, with its metrics."""
    c = _start(saver, op)
    if c is None:
        return call(op, write=write, traced=True)
    token = c.t.context.attach(c.t.trace.set_span_in_context(c.span))
    try:
        return call(c.counting(op), write=write, traced=True)
    except BaseException as exc:
        c.failed(exc)
        raise
    finally:
        c.t.context.detach(token)
        c.finish()


async def arun(saver: Any, op: Op[T], write: bool, call: Callable[..., Awaitable[T]]) -> T:
    """`run` for a saver's `_arun`."""
    c = _start(saver, op)
    if c is None:
        return await call(op, write=write, traced=True)
    token = c.t.context.attach(c.t.trace.set_span_in_context(c.span))
    try:
        return await call(c.counting(op), write=write, traced=True)
    except BaseException as exc:
        c.failed(exc)
        raise
    finally:
        c.t.context.detach(token)
        c.finish()


def _list_call(saver: Any, config: Any) -> _Call | None:
    t = _state
    return None if t is None else _Call(t, saver, "list", _thread_of(config))


def traced_list(saver: Any, items: Iterator[T], config: Any) -> Generator[T, None, None]:
    """A saver's `list` in a span from the first item asked for to the last; its duration
    metric counts the time spent producing the items, not the caller's in between."""
    c = _list_call(saver, config)
    if c is None:
        yield from items
        return
    busy = 0.0
    try:
        while True:
            began = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                break
            finally:
                busy += time.perf_counter() - began
            c.rows += 1
            yield item
    except GeneratorExit:  # the caller stopped early: not an error
        raise
    except BaseException as exc:
        c.failed(exc)
        raise
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
        c.finish(busy)


async def atraced_list(saver: Any, items: AsyncIterator[T], config: Any) -> AsyncGenerator[T, None]:
    """`traced_list` for a saver's `alist`."""
    c = _list_call(saver, config)
    if c is None:
        async for item in items:
            yield item
        return
    busy = 0.0
    try:
        while True:
            began = time.perf_counter()
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                break
            finally:
                busy += time.perf_counter() - began
            c.rows += 1
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        c.failed(exc)
        raise
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
        c.finish(busy)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


__all__: Sequence[str] = ["disable", "enable", "enabled", "operation_name"]

if _flag("LGSD_OTEL"):
    enable(thread_ids=_flag("LGSD_OTEL_THREAD_IDS"))
