"""OpenTelemetry spans and metrics (telemetry.py), read back from the SDK's in-memory
exporters, on every saver flavour, with a real LangGraph graph."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import START, MessagesState, StateGraph
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from langgraph_store_dual import AsyncThreadManager, ConfigError, telemetry

ROOT = Path(__file__).resolve().parent.parent
THREAD = "thread-7f3a"


class Otel:
    """The SDK's in-memory span exporter and metric reader, wired to `telemetry`."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def enable(self, **options: Any) -> None:
        telemetry.enable(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of `metric` collected now."""
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Otel]:
    recorder = Otel()
    recorder.enable()
    try:
        yield recorder
    finally:
        telemetry.disable()


def system(flavour: str) -> str:
    return "postgresql" if flavour.startswith("postgres") else "sqlite"


def chat_graph(saver: Any) -> Any:
    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [("ai", f"you said {state['messages'][-1].content}")]}

    builder = StateGraph(MessagesState)
    builder.add_node(reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


async def run_graph(saver: Any, api: str, thread_id: str = THREAD) -> None:
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": thread_id}}
    for text in ("hi", "again"):
        if api == "async":
            await graph.ainvoke({"messages": [("user", text)]}, config)
        else:
            await asyncio.to_thread(graph.invoke, {"messages": [("user", text)]}, config)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def values(span: ReadableSpan) -> list[str]:
    """Every attribute and event attribute value of a span, as text."""
    found = [str(v) for v in attrs(span).values()]
    for event in span.events:
        found += [str(v) for v in (event.attributes or {}).values()]
    return [*found, span.status.description or ""]


async def test_a_graph_run_records_spans_and_durations(
    saver: Any, flavour: str, api: str, otel: Otel
) -> None:
    await run_graph(saver, api)
    db = system(flavour)
    names = {s.name for s in otel.spans()}
    assert {f"get_tuple {db}", f"put {db}", f"put_writes {db}"} <= names
    for span in otel.spans():
        found = attrs(span)
        assert span.kind is SpanKind.CLIENT
        assert found["db.system.name"] == found["db.system"] == db
        assert span.name == f"{found['db.operation.name']} {db}"
        assert span.status.status_code is StatusCode.UNSET
        assert not any(THREAD in v for v in values(span)), span.name  # not opted in
    read = attrs(otel.spans(f"get_tuple {db}")[-1])
    # its checkpoint's row and one row per stored value it fetched
    fetched = read["langgraph_store_dual.cache.values_fetched"]
    assert read["db.response.returned_rows"] == 1 + fetched
    assert read["langgraph_store_dual.statements"] >= 1
    assert read["langgraph_store_dual.received_size"] > 0
    assert read["langgraph_store_dual.cache.values_fetched"] >= 0
    put = attrs(otel.spans(f"put {db}")[-1])
    assert put["langgraph_store_dual.sent_size"] > 100  # the snapshot's JSON
    durations = {
        p.attributes["db.operation.name"]: p
        for p in otel.points("db.client.operation.duration")
        if p.attributes["db.system.name"] == db
    }
    assert durations["get_tuple"].count == 2 and durations["put"].count >= 2
    assert 0 < durations["put_writes"].sum < 10 * durations["put_writes"].count
    assert not otel.points("langgraph_store_dual.errors")


async def test_spans_join_the_callers_trace(saver: Any, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        await saver.aput(config(), checkpoint(), {}, {})
        await saver.aget_tuple(config())
        listed = [t async for t in saver.alist(config())]
    assert len(listed) == 1
    trace_id = request.get_span_context().trace_id
    ours = [s for s in otel.spans() if s.name != "request"]
    assert {s.name.split()[0] for s in ours} >= {"put", "get_tuple", "list"}
    assert all(s.context.trace_id == trace_id for s in ours)
    assert all(
        s.parent is not None and s.parent.span_id == request.get_span_context().span_id
        for s in ours
    )


def config(thread_id: str = THREAD) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def checkpoint(n: int = 0) -> Any:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["id"] = f"1ef0000{n}-0000-6000-8000-000000000000"
    return cp


async def test_thread_ids_when_opted_in(saver: Any, flavour: str, otel: Otel) -> None:
    otel.enable(thread_ids=True)
    await run_graph(saver, "async")
    assert (await manage(saver, "get", THREAD)) is not None
    db = system(flavour)
    for name in ("get_tuple", "put", "put_writes", "threads.get"):
        spans = otel.spans(f"{name} {db}")
        assert spans, name
        assert all(attrs(s)["langgraph_store_dual.thread_id"] == THREAD for s in spans)


async def test_list_spans_count_the_checkpoints(saver: Any, flavour: str, otel: Otel) -> None:
    parent = None
    for n in range(3):
        cp = checkpoint(n)
        await saver.aput(
            {"configurable": {**config()["configurable"], "checkpoint_id": parent}}, cp, {}, {}
        )
        parent = cp["id"]
    assert len([t async for t in saver.alist(config())]) == 3
    assert len(await asyncio.to_thread(lambda: list(saver.list(config())))) == 3
    first = saver.alist(config())
    assert await anext(first) is not None
    await first.aclose()  # stopped early: not an error
    spans = otel.spans(f"list {system(flavour)}")
    rows = [attrs(s)["db.response.returned_rows"] for s in spans]
    assert rows[:2] == [3, 3] and 1 <= rows[2] <= 3  # a sync saver's alist reads ahead
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    # the reads a list makes (pages, stored values) are inside its span, not spans of their own
    assert {s.name.split()[0] for s in otel.spans()} == {"put", "list"}
    listed = [
        p
        for p in otel.points("db.client.operation.duration")
        if p.attributes["db.operation.name"] == "list"
    ]
    assert listed[0].count == 3


async def test_errors_are_recorded_and_counted(saver: Any, flavour: str, otel: Otel) -> None:
    db = system(flavour)
    with pytest.raises(ConfigError, match="is required"):
        await saver.aget_tuple({"configurable": {"checkpoint_ns": ""}})
    with pytest.raises(ConfigError, match="filter must be a dict"):
        [t async for t in saver.alist(config(), filter={1: 2})]
    for name in ("get_tuple", "list"):
        (span,) = otel.spans(f"{name} {db}")
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "ConfigError"
        (event,) = span.events
        assert event.attributes == {"exception.type": "langgraph_store_dual.errors.ConfigError"}
        assert span.status.description == "ConfigError"  # no message: it may name threads
    counted = {
        p.attributes["db.operation.name"]: p.value
        for p in otel.points("langgraph_store_dual.errors")
        if p.attributes["error.type"] == "ConfigError"
    }
    assert counted == {"get_tuple": 1, "list": 1}
    failed = [
        p for p in otel.points("db.client.operation.duration") if "error.type" in p.attributes
    ]
    assert {p.attributes["db.operation.name"] for p in failed} == {"get_tuple", "list"}
    otel.enable(thread_ids=True)  # with thread ids, error messages too
    with pytest.raises(ConfigError):
        await saver.aget_tuple({"configurable": {"thread_id": "x" * 600}})
    span = otel.spans(f"get_tuple {db}")[-1]
    assert "limit is 512" in (span.status.description or "")
    assert dict(span.events[0].attributes or {})["exception.message"]


async def manage(saver: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a method of the saver's thread manager (awaitable on async savers)."""
    bound = getattr(saver.threads, method)
    if isinstance(saver.threads, AsyncThreadManager):
        return await bound(*args, **kwargs)
    return await asyncio.to_thread(bound, *args, **kwargs)


async def test_thread_manager_operations(saver: Any, flavour: str, otel: Otel) -> None:
    await manage(saver, "create", thread_id="mgr", user_id="ana")
    await saver.aput(config("mgr"), checkpoint(), {}, {})
    await manage(saver, "list", user_id="ana")
    await manage(saver, "history", "mgr")
    await manage(saver, "keep_last", 1)
    await manage(saver, "delete", "mgr")
    names = [s.name.rsplit(" ", 1)[0] for s in otel.spans()]
    assert names == [
        "threads.create", "put", "threads.list", "list",
        "retention.ids_after", "retention.prune_batch", "retention.ids_after",
        "threads.delete",
    ]  # fmt: skip
    assert all(s.name.endswith(f" {system(flavour)}") for s in otel.spans())


async def test_pool_metrics(pg_clean_url: str, otel: Otel) -> None:
    from conftest import open_saver

    async with open_saver("postgres-async", pg_clean_url, pool_max_size=3) as saver:
        await saver.aput(config(), checkpoint(), {}, {})
        points = {
            name: otel.points(name)
            for name in (
                "db.client.connection.count",
                "db.client.connection.max",
                "db.client.connection.pending_requests",
            )
        }
    (maximum,) = points["db.client.connection.max"]
    assert maximum.value == 3
    assert maximum.attributes == {
        "db.system.name": "postgresql",
        "db.client.connection.pool.name": "langgraph-store-dual",
    }
    states = {
        p.attributes["db.client.connection.state"]: p.value
        for p in points["db.client.connection.count"]
    }
    assert states["idle"] + states["used"] >= 1 and states["used"] == 0
    assert [p.value for p in points["db.client.connection.pending_requests"]] == [0]


async def test_nothing_is_recorded_once_disabled(saver: Any, otel: Otel) -> None:
    await saver.aput(config(), checkpoint(), {}, {})
    telemetry.disable()
    assert telemetry.enabled is False
    assert await saver.aget_tuple(config()) is not None
    assert [s.name.split()[0] for s in otel.spans()] == ["put"]
    (point,) = otel.points("db.client.operation.duration")
    assert point.attributes["db.operation.name"] == "put" and point.count == 1


def python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_off_by_default_without_importing_opentelemetry(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from langgraph_store_dual import SqliteSaver, telemetry\n"
        f"with SqliteSaver.from_conn_string({str(tmp_path / 'x.db')!r}) as s:\n"
        "    s.setup()\n"
        "    s.get_tuple({'configurable': {'thread_id': 't'}})\n"
        "print(telemetry.enabled, any(m.startswith('opentelemetry') for m in sys.modules))\n"
    )
    assert python(code, LGSD_OTEL="") == "False False"
    assert python(code, LGSD_OTEL="1") == "True True"
    ids = "from langgraph_store_dual import telemetry; print(telemetry._state.thread_ids)"
    assert python(ids, LGSD_OTEL="1", LGSD_OTEL_THREAD_IDS="yes") == "True"


def test_enable_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ConfigError, match=r"pip install 'langgraph-store-dual\[otel\]'"):
        telemetry.enable()
    assert telemetry.enabled is False


def test_operation_names() -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from langgraph_store_dual.codec import JsonCodec
    from langgraph_store_dual.core import history, ops, retention
    from langgraph_store_dual.core import threads as thread_ops
    from langgraph_store_dual.sqlite.dialect import SQLITE as d

    def name(op: Any) -> str | None:
        got = telemetry.operation_name(op)
        op.close()
        return got

    assert name(ops.delete_thread(d, "t")) == "delete_thread"
    assert name(thread_ops.get(d, "t")) == "threads.get"
    assert name(history.fork(d, config(), None)) == "threads.fork"
    assert name(retention._ids_after(d, "", 10)) == "retention.ids_after"
    assert (
        name(ops.delta_history(d, JsonCodec(JsonPlusSerializer()), config(), ["a"]))
        == "get_delta_channel_history"
    )
    assert name(ops.select("SELECT 1", ())) is None  # a step of `list`
    assert telemetry.thread_of(ops.copy_thread(d, "a", "b")) == "a"
    assert telemetry.thread_of(ops.prune(d, ["a"], "delete")) is None
