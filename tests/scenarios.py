"""LangGraph scenarios run against any checkpointer, each returning a comparable trace.

Every scenario builds real compiled graphs for the checkpointer it is given, drives them
through a fixed sequence of operations with either the sync API (run in a worker thread,
since an async saver refuses sync calls on its event loop thread) or the async API, and
records what a user of LangGraph can observe: invoke/stream outputs, ``get_state``
snapshots, ``get_state_history``, node execution counts.

Traces are normalised so that two runs of the same scenario on two different savers
compare equal exactly when the savers behave the same:

* checkpoint ids, task ids and interrupt ids (random or time based) are replaced by
  labels numbered in order of first appearance in the trace, so the *structure*
  (which snapshot is whose parent, which branch shares which ancestors) is still
  compared;
* timestamps are reduced to "present or not";
* every leaf value is paired with its type name, so ``1`` vs ``1.0`` vs ``True`` or a
  tuple vs a list are told apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import operator
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, TypedDict

import pydantic
from helpers import Api, get_history, get_state, invoke, stream, update_state
from helpers import run_cfg as thread
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, Interrupt, PregelTask, Send, StateSnapshot, interrupt

Trace = list[tuple[str, Any]]

# --------------------------------------------------------------------------------------
# Driving a compiled graph with either API
# --------------------------------------------------------------------------------------


async def walk_branch(graph: Any, config: dict, api: Api) -> list[Any]:
    """Snapshots from ``config`` back to the root following ``parent_config`` links."""
    snapshots = []
    snapshot = await get_state(graph, config, api)
    snapshots.append(snapshot)
    while snapshot.parent_config is not None:
        snapshot = await get_state(graph, snapshot.parent_config, api)
        snapshots.append(snapshot)
    return snapshots


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------

_VOLATILE_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b"
)
_METADATA_KEYS = ("source", "step", "writes", "parents")


class Recorder:
    """Collects a trace, relabelling volatile ids consistently within one run."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.trace: Trace = []
        self.raw: dict[str, Any] = {}
        self._labels: dict[str, str] = {}
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- node execution counting (nodes may run in worker threads) --
    def called(self, name: str) -> None:
        with self._lock:
            self._calls[name] += 1

    def record_calls(self, tag: str = "calls") -> None:
        with self._lock:
            calls = dict(sorted(self._calls.items()))
        self.raw[tag] = calls
        self.trace.append((tag, calls))

    def record(self, tag: str, obj: Any) -> None:
        assert tag not in self.raw, f"duplicate trace tag {tag}"
        self.raw[tag] = obj
        self.trace.append((tag, self.norm(obj)))

    def record_error(self, tag: str, exc: BaseException) -> None:
        self.raw[tag] = exc
        self.trace.append((tag, self._exc(exc)))

    def merge(self, prefix: str, other: Recorder) -> None:
        self.trace.extend((f"{prefix}{tag}", value) for tag, value in other.trace)
        self.raw.update((f"{prefix}{tag}", value) for tag, value in other.raw.items())

    # -- normalisation --
    def label(self, text: str) -> str:
        def repl(match: re.Match[str]) -> str:
            return self._labels.setdefault(match.group(0), f"<id{len(self._labels)}>")

        return _VOLATILE_ID.sub(repl, text)

    def _exc(self, exc: BaseException | None) -> Any:
        if exc is None:
            return None
        return ("exception", type(exc).__name__, self.label(str(exc)))

    def norm(self, obj: Any) -> Any:
        if obj is None:
            return None
        if isinstance(obj, str):
            return self.label(obj)
        if isinstance(obj, StateSnapshot):
            return self._snapshot(obj)
        if isinstance(obj, PregelTask):
            return self._task(obj)
        if isinstance(obj, Interrupt):
            return {
                "interrupt": self.norm(obj.value),
                "id": self.label(obj.id),
                "response_schema": self.norm(obj.response_schema),
            }
        if isinstance(obj, Send):
            return ("Send", obj.node, self.norm(obj.arg))
        if isinstance(obj, Command):
            return ("Command", self.norm(obj.update), self.norm(obj.goto), self.norm(obj.resume))
        if isinstance(obj, BaseException):
            return self._exc(obj)
        if isinstance(obj, BaseMessage):
            return (type(obj).__name__, self.norm(obj.model_dump()))
        if isinstance(obj, pydantic.BaseModel):
            return (type(obj).__qualname__, self.norm(obj.model_dump()))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            return (type(obj).__qualname__, self.norm(fields))
        if isinstance(obj, Mapping):
            return (
                type(obj).__name__,
                {self.norm(k): self.norm(v) for k, v in obj.items()},
            )
        if isinstance(obj, (list, tuple)):
            return (type(obj).__name__, [self.norm(v) for v in obj])
        if isinstance(obj, (set, frozenset)):
            return (type(obj).__name__, sorted((self.norm(v) for v in obj), key=repr))
        if isinstance(obj, float):
            return ("float", repr(obj))  # tells -0.0 from 0.0, and nan compares equal
        return (type(obj).__qualname__, obj)

    def _config(self, config: Mapping[str, Any] | None) -> Any:
        if config is None:
            return None
        conf = config.get("configurable", {})
        return {
            key: self.norm(conf[key])
            for key in ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
            if key in conf
        }

    def _task(self, task: PregelTask) -> dict:
        state = task.state
        if isinstance(state, StateSnapshot):
            state_out: Any = self._snapshot(state)
        else:
            state_out = self._config(state)
        return {
            "id": self.label(task.id),
            "name": task.name,
            "path": self.norm(task.path),
            "error": self._exc(task.error),
            "interrupts": [self.norm(i) for i in task.interrupts],
            "state": state_out,
            "result": self.norm(task.result),
        }

    def _snapshot(self, snap: StateSnapshot) -> dict:
        metadata = snap.metadata or {}
        return {
            "config": self._config(snap.config),
            "values": self.norm(snap.values),
            "next": snap.next,
            "metadata": {k: self.norm(metadata[k]) for k in _METADATA_KEYS if k in metadata},
            "created_at": snap.created_at is not None,
            "parent_config": self._config(snap.parent_config),
            "tasks": [self._task(t) for t in snap.tasks],
            "interrupts": [self.norm(i) for i in snap.interrupts],
        }


def differences(got: Any, want: Any, path: str = "", limit: int = 12) -> list[str]:
    """Where two normalised values differ, as "path: got != want" lines (for messages)."""
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(b) + [k for k in a if k not in b]:
                if key not in a:
                    out.append(f"{where}[{key!r}]: missing != {b[key]!r}")
                elif key not in b:
                    out.append(f"{where}[{key!r}]: {a[key]!r} != missing")
                else:
                    walk(a[key], b[key], f"{where}[{key!r}]")
            return
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{i}]")
            return
        out.append(f"{where}: {a!r} != {b!r}")

    walk(got, want, path)
    return out


def summary(snapshots: list[Any]) -> list[tuple[str, int, tuple[str, ...]]]:
    """(source, step, next) per snapshot: a compact view used for sanity asserts."""
    return [(s.metadata["source"], s.metadata["step"], s.next) for s in snapshots]


# --------------------------------------------------------------------------------------
# 1. Chat graph: fake chat model + tool node, MessagesState
# --------------------------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = {t.name: t for t in (add, multiply)}


def _call(name: str, call_id: str, **args: int) -> dict:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


# What the "model" answers, keyed by the id of the latest human message, indexed by the
# number of AI messages already produced after it. Choosing by state (not by call count)
# keeps the model deterministic when LangGraph re-executes a node.
CHAT_SCRIPT: dict[str, list[AIMessage]] = {
    "h-a1": [
        AIMessage("", id="ai-a1-1", tool_calls=[_call("add", "call-a1", a=2, b=3)]),
        AIMessage("2 + 3 = 5", id="ai-a1-2"),
    ],
    "h-a2": [AIMessage("Hello there!", id="ai-a2-1")],
    "h-a3": [
        AIMessage(
            "Let me compute both.",
            id="ai-a3-1",
            tool_calls=[
                _call("multiply", "call-a3-m", a=4, b=5),
                _call("add", "call-a3-a", a=1, b=2),
            ],
        ),
        AIMessage("4 * 5 = 20 and 1 + 2 = 3", id="ai-a3-2"),
    ],
    "h-b1": [
        AIMessage("", id="ai-b1-1", tool_calls=[_call("add", "call-b1", a=10, b=20)]),
        AIMessage("10 + 20 = 30", id="ai-b1-2"),
    ],
    "h-d1": [
        AIMessage("", id="ai-d1-1", tool_calls=[_call("multiply", "call-d1", a=6, b=7)]),
        AIMessage("6 * 7 = 42", id="ai-d1-2"),
    ],
    "h-d2": [AIMessage("Bye!", id="ai-d2-1")],
}

CHAT_TURNS_A = [
    ("h-a1", "What is 2 + 3?"),
    ("h-a2", "Thanks! And hello?"),
    ("h-a3", "Multiply 4 by 5 and add 1 to 2."),
]
CHAT_TURN_B = ("h-b1", "What is 10 + 20?")
CHAT_TURNS_DURABILITY = [("h-d1", "What is 6 * 7?"), ("h-d2", "Goodbye.")]


def _scripted_reply(messages: list[BaseMessage]) -> tuple[FakeMessagesListChatModel, list]:
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    produced = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    reply = CHAT_SCRIPT[messages[last_human].id][produced]
    return FakeMessagesListChatModel(responses=[reply.model_copy(deep=True)]), messages


def build_chat_graph(checkpointer: Any, rec: Recorder) -> Any:
    def agent(state: MessagesState) -> dict:
        rec.called("agent")
        model, messages = _scripted_reply(state["messages"])
        return {"messages": [model.invoke(messages)]}

    async def aagent(state: MessagesState) -> dict:
        rec.called("agent")
        model, messages = _scripted_reply(state["messages"])
        return {"messages": [await model.ainvoke(messages)]}

    def tools(state: MessagesState) -> dict:
        rec.called("tools")
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        results = []
        for call in last.tool_calls:
            message = TOOLS[call["name"]].invoke(call)
            assert isinstance(message, ToolMessage)
            message.id = f"tool-{call['id']}"
            results.append(message)
        return {"messages": results}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(agent, afunc=aagent, name="agent"))
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _human(turn: tuple[str, str]) -> dict:
    message_id, content = turn
    return {"messages": [HumanMessage(content, id=message_id)]}


async def scenario_chat(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_chat_graph(checkpointer, rec)
    thread_a, thread_b = thread("chat-a"), thread("chat-b")

    for i, turn in enumerate(CHAT_TURNS_A):
        rec.record(f"a.invoke[{i}]", await invoke(graph, _human(turn), thread_a, api))
        rec.record(f"a.state[{i}]", await get_state(graph, thread_a, api))

    # second thread, driven through stream(): must not see thread A's messages
    chunks = await stream(graph, _human(CHAT_TURN_B), thread_b, api, stream_mode="updates")
    rec.record("b.stream", chunks)
    rec.record("b.state", await get_state(graph, thread_b, api))
    rec.record("a.state.after_b", await get_state(graph, thread_a, api))

    history_a = await get_history(graph, thread_a, api)
    rec.record("a.history", history_a)
    rec.record("b.history", await get_history(graph, thread_b, api))
    rec.record("unknown.state", await get_state(graph, thread("chat-nobody"), api))
    rec.record("unknown.history", await get_history(graph, thread("chat-nobody"), api))

    # list() filters as seen through get_state_history
    rec.record("a.history.limit", await get_history(graph, thread_a, api, limit=3))
    middle = history_a[len(history_a) // 2].config
    rec.record("a.history.before", await get_history(graph, thread_a, api, before=middle))
    rec.record(
        "a.history.before.limit", await get_history(graph, thread_a, api, before=middle, limit=2)
    )
    rec.record(
        "a.history.filter.input",
        await get_history(graph, thread_a, api, filter={"source": "input"}),
    )
    rec.record("a.history.filter.step", await get_history(graph, thread_a, api, filter={"step": 2}))
    rec.record_calls()
    return rec


# --------------------------------------------------------------------------------------
# 2. interrupt() and Command(resume=...)
# --------------------------------------------------------------------------------------


class LogState(TypedDict, total=False):
    value: int
    log: Annotated[list[str], operator.add]


def build_interrupt_graph(checkpointer: Any, rec: Recorder) -> Any:
    def ask(state: LogState) -> dict:
        rec.called("ask")
        name = interrupt({"question": "What is your name?", "seen": list(state["log"])})
        return {"log": [f"name={name}"]}

    def confirm(state: LogState) -> dict:
        rec.called("confirm")
        # two sequential interrupts inside one node
        first = interrupt("first confirmation?")
        rec.called("confirm.after_first")
        second = interrupt({"second": "confirmation?", "first_answer": first})
        return {"log": [f"first={first}", f"second={second}"]}

    def finish(state: LogState) -> dict:
        rec.called("finish")
        return {"log": ["done"]}

    builder = StateGraph(LogState)
    builder.add_node(ask)
    builder.add_node(confirm)
    builder.add_node(finish)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "confirm")
    builder.add_edge("confirm", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)


def build_parallel_interrupt_graph(checkpointer: Any, rec: Recorder) -> Any:
    def make(name: str) -> Callable[[LogState], dict]:
        def node(state: LogState) -> dict:
            rec.called(name)
            answer = interrupt(f"{name} needs input")
            return {"log": [f"{name}={answer}"]}

        return node

    builder = StateGraph(LogState)
    builder.add_node("left", make("left"))
    builder.add_node("right", make("right"))
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge(["left", "right"], END)
    return builder.compile(checkpointer=checkpointer)


async def scenario_interrupts(
    checkpointer: BaseCheckpointSaver, api: Api, durability: str | None = None
) -> Recorder:
    rec = Recorder(api)
    kwargs = {} if durability is None else {"durability": durability}
    graph = build_interrupt_graph(checkpointer, rec)
    config = thread("interrupts")

    rec.record("invoke.start", await invoke(graph, {"log": ["start"]}, config, api, **kwargs))
    for i, answer in enumerate(["Ada", "yes", "sure"]):
        rec.record(f"state.waiting[{i}]", await get_state(graph, config, api))
        rec.record_calls(f"calls[{i}]")
        out = await invoke(graph, Command(resume=answer), config, api, **kwargs)
        rec.record(f"invoke.resume[{i}]", out)
    rec.record("state.final", await get_state(graph, config, api))
    rec.record("history", await get_history(graph, config, api))

    # parallel interrupts, resumed together by interrupt id
    pgraph = build_parallel_interrupt_graph(checkpointer, rec)
    pconfig = thread("parallel-interrupts")
    out = await invoke(pgraph, {"log": []}, pconfig, api, **kwargs)
    # the two interrupts are reported in completion order: sort them
    out["__interrupt__"] = sorted(out["__interrupt__"], key=lambda i: i.value)
    rec.record("parallel.invoke", out)
    waiting = await get_state(pgraph, pconfig, api)
    rec.record("parallel.state.waiting", waiting)
    answers = {i.id: f"answer-for-{task.name}" for task in waiting.tasks for i in task.interrupts}
    rec.record(
        "parallel.resume", await invoke(pgraph, Command(resume=answers), pconfig, api, **kwargs)
    )
    rec.record("parallel.state.final", await get_state(pgraph, pconfig, api))
    rec.record("parallel.history", await get_history(pgraph, pconfig, api))
    rec.record_calls()
    return rec


# --------------------------------------------------------------------------------------
# 3. Subgraphs with their own state schema, interrupted inside
# --------------------------------------------------------------------------------------


class ReviewState(TypedDict, total=False):
    draft: str
    notes: Annotated[list[str], operator.add]
    verdict: str


class ParentState(TypedDict, total=False):
    topic: str
    draft: str
    report: str
    log: Annotated[list[str], operator.add]


class SummaryState(TypedDict, total=False):
    text: str
    words: int
    approved_by: str


def build_subgraph_graph(checkpointer: Any, rec: Recorder) -> Any:
    def write(state: ReviewState) -> dict:
        rec.called("child.write")
        return {"draft": state["draft"].upper(), "notes": ["written"]}

    def review(state: ReviewState) -> dict:
        rec.called("child.review")
        verdict = interrupt({"review": state["draft"], "notes": state["notes"]})
        return {"verdict": verdict, "notes": [f"reviewed:{verdict}"]}

    review_builder = StateGraph(ReviewState)
    review_builder.add_node(write)
    review_builder.add_node(review)
    review_builder.add_edge(START, "write")
    review_builder.add_edge("write", "review")
    # shares only "draft" with the parent; used directly as a node
    review_graph = review_builder.compile()

    def count(state: SummaryState) -> dict:
        rec.called("summary.count")
        return {"words": len(state["text"].split())}

    def approve(state: SummaryState) -> dict:
        rec.called("summary.approve")
        who = interrupt({"approve_summary": state["text"], "words": state["words"]})
        return {"approved_by": who}

    summary_builder = StateGraph(SummaryState)
    summary_builder.add_node(count)
    summary_builder.add_node(approve)
    summary_builder.add_edge(START, "count")
    summary_builder.add_edge("count", "approve")
    # no key in common with the parent: invoked from a wrapper node
    summary_graph = summary_builder.compile()

    def prepare(state: ParentState) -> dict:
        rec.called("prepare")
        return {"draft": f"a note on {state['topic']}", "log": ["prepared"]}

    def summarise(state: ParentState) -> dict:
        rec.called("summarise")
        out = summary_graph.invoke({"text": state["draft"]})
        return {"report": f"{out['words']} words, approved by {out['approved_by']}"}

    async def asummarise(state: ParentState) -> dict:
        rec.called("summarise")
        out = await summary_graph.ainvoke({"text": state["draft"]})
        return {"report": f"{out['words']} words, approved by {out['approved_by']}"}

    builder = StateGraph(ParentState)
    builder.add_node(prepare)
    builder.add_node("review", review_graph)
    builder.add_node("summarise", RunnableLambda(summarise, afunc=asummarise, name="summarise"))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "review")
    builder.add_edge("review", "summarise")
    builder.add_edge("summarise", END)
    return builder.compile(checkpointer=checkpointer)


async def _record_subgraph_wait(rec: Recorder, graph: Any, config: dict, tag: str) -> None:
    api = rec.api
    rec.record(f"{tag}.state", await get_state(graph, config, api))
    nested = await get_state(graph, config, api, subgraphs=True)
    rec.record(f"{tag}.state.subgraphs", nested)
    (task,) = nested.tasks
    assert isinstance(task.state, StateSnapshot), "subgraph state missing with subgraphs=True"
    ns = task.state.config["configurable"]["checkpoint_ns"]
    child = thread(config["configurable"]["thread_id"], checkpoint_ns=ns)
    rec.record(f"{tag}.child.history", await get_history(graph, child, api))
    rec.record(f"{tag}.child.state", await get_state(graph, task.state.config, api))


async def scenario_subgraph(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_subgraph_graph(checkpointer, rec)
    config = thread("subgraph")

    rec.record("invoke.start", await invoke(graph, {"topic": "otters", "log": []}, config, api))
    await _record_subgraph_wait(rec, graph, config, "wait1")
    rec.record("invoke.resume1", await invoke(graph, Command(resume="lgtm"), config, api))
    await _record_subgraph_wait(rec, graph, config, "wait2")
    rec.record("invoke.resume2", await invoke(graph, Command(resume="editor"), config, api))
    rec.record("state.final", await get_state(graph, config, api))
    rec.record("state.final.subgraphs", await get_state(graph, config, api, subgraphs=True))
    rec.record("history", await get_history(graph, config, api))
    rec.record_calls()
    return rec


# --------------------------------------------------------------------------------------
# 4. Send fan-out
# --------------------------------------------------------------------------------------


class FanState(TypedDict, total=False):
    items: list[int]
    results: Annotated[list[int], operator.add]
    total: int


class WorkerInput(TypedDict):
    item: int
    factor: int


def build_fanout_graph(checkpointer: Any, rec: Recorder) -> Any:
    def plan(state: FanState) -> dict:
        rec.called("plan")
        return {"items": sorted(state["items"])}

    def fan_out(state: FanState) -> list[Send]:
        return [Send("worker", {"item": item, "factor": 10}) for item in state["items"]]

    def worker(state: WorkerInput) -> dict:
        rec.called("worker")
        return {"results": [state["item"] * state["factor"]]}

    def reduce(state: FanState) -> dict:
        rec.called("reduce")
        return {"total": sum(state["results"])}

    builder = StateGraph(FanState)
    builder.add_node(plan)
    builder.add_node(worker)
    builder.add_node(reduce)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["worker"])
    builder.add_edge("worker", "reduce")
    builder.add_edge("reduce", END)
    return builder.compile(checkpointer=checkpointer)


async def scenario_fanout(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_fanout_graph(checkpointer, rec)
    config = thread("fanout")

    chunks = await stream(graph, {"items": [3, 1, 2]}, config, api, stream_mode="values")
    rec.record("stream.values", chunks)
    rec.record("state.1", await get_state(graph, config, api))
    # second run on the same thread: results keep accumulating through the reducer
    rec.record("invoke.2", await invoke(graph, {"items": [5, 4]}, config, api))
    rec.record("state.2", await get_state(graph, config, api))
    rec.record("history", await get_history(graph, config, api))
    rec.record_calls()
    return rec


# --------------------------------------------------------------------------------------
# 5. update_state and forks; 6. replay
# --------------------------------------------------------------------------------------


def build_linear_graph(checkpointer: Any, rec: Recorder, **compile_kwargs: Any) -> Any:
    def make(name: str, delta: int) -> Callable[[LogState], dict]:
        def node(state: LogState) -> dict:
            rec.called(name)
            return {"value": state.get("value", 0) + delta, "log": [f"{name}:{state.get('value')}"]}

        return node

    builder = StateGraph(LogState)
    builder.add_node("a", make("a", 1))
    builder.add_node("b", make("b", 10))
    builder.add_node("c", make("c", 100))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=checkpointer, **compile_kwargs)


async def scenario_update_and_fork(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_linear_graph(checkpointer, rec, interrupt_before=["b"])
    config = thread("fork")

    rec.record("invoke.1", await invoke(graph, {"value": 0, "log": []}, config, api))
    rec.record("state.paused", await get_state(graph, config, api))
    # edit the latest state as if node "a" had written it; "b" is still next
    updated = await update_state(graph, config, {"value": 41, "log": ["edited"]}, api, as_node="a")
    rec.record("update.config", updated)
    rec.record("state.updated", await get_state(graph, config, api))
    rec.record("invoke.continue", await invoke(graph, None, config, api))
    original_tip = await get_state(graph, config, api)
    rec.record("state.original", original_tip)
    original_history = await get_history(graph, config, api)
    rec.record("history.original", original_history)

    # fork from the checkpoint taken before the manual edit (paused before "b")
    paused = [s for s in original_history if s.next == ("b",) and s.metadata["source"] == "loop"]
    assert len(paused) == 1, [(s.metadata, s.next) for s in original_history]
    fork = await update_state(
        graph, paused[0].config, {"value": -1, "log": ["forked"]}, api, as_node="a"
    )
    rec.record("fork.config", fork)
    rec.record("fork.state", await get_state(graph, fork, api))
    rec.record("fork.invoke", await invoke(graph, None, fork, api))
    rec.record("state.latest", await get_state(graph, config, api))
    rec.record("history.all", await get_history(graph, config, api))
    # each branch, walked through parent links; the original one must be unchanged
    rec.record("branch.original", await walk_branch(graph, original_tip.config, api))
    rec.record("branch.fork", await walk_branch(graph, config, api))
    rec.record("state.original.again", await get_state(graph, original_tip.config, api))
    rec.record_calls()
    return rec


async def scenario_replay(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_linear_graph(checkpointer, rec)
    config = thread("replay")

    rec.record("invoke", await invoke(graph, {"value": 0, "log": []}, config, api))
    history = await get_history(graph, config, api)
    rec.record("history.before", history)
    (before_b,) = [s for s in history if s.next == ("b",)]
    rec.record("state.at_b", await get_state(graph, before_b.config, api))
    rec.record_calls("calls.before")

    # replay from the checkpoint before "b": "a" must not run again
    chunks = await stream(graph, None, before_b.config, api, stream_mode="updates")
    rec.record("replay.stream", chunks)
    rec.record_calls("calls.after_replay")
    rec.record("state.after_replay", await get_state(graph, config, api))
    rec.record("history.after_replay", await get_history(graph, config, api))

    # replay from the very first checkpoint (input) with invoke
    first = history[-1]
    rec.record("replay.from_input", await invoke(graph, None, first.config, api))
    rec.record_calls("calls.after_second_replay")
    rec.record("history.final", await get_history(graph, config, api))
    return rec


def build_stateful_subgraph_graph(checkpointer: Any, rec: Recorder) -> Any:
    """A parent whose middle node is a compiled subgraph with checkpoints of its own."""

    def child_step(name: str, delta: int) -> Callable[[LogState], dict]:
        def node(state: LogState) -> dict:
            rec.called(f"child.{name}")
            return {"value": state.get("value", 0) + delta, "log": [f"child.{name}"]}

        return node

    child = StateGraph(LogState)
    child.add_sequence([("double", child_step("double", 2)), ("triple", child_step("triple", 3))])
    child.add_edge(START, "double")
    child_graph = child.compile(checkpointer=True)  # stateful: its checkpoints persist

    def start(state: LogState) -> dict:
        rec.called("start")
        return {"value": state.get("value", 0) + 1, "log": ["start"]}

    def finish(state: LogState) -> dict:
        rec.called("finish")
        return {"value": state["value"] * 10, "log": ["finish"]}

    builder = StateGraph(LogState)
    builder.add_sequence([("start", start), ("child", child_graph), ("finish", finish)])
    builder.add_edge(START, "start")
    return builder.compile(checkpointer=checkpointer)


async def scenario_subgraph_replay(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    """Replay from an older checkpoint through a stateful subgraph: LangGraph looks up the
    subgraph's checkpoint with `list(config, before={"configurable": {"checkpoint_id":
    X}}, limit=1)`, a `before` without a thread id."""
    rec = Recorder(api)
    graph = build_stateful_subgraph_graph(checkpointer, rec)
    config = thread("subgraph-replay")

    for turn in range(3):
        rec.record(f"invoke.{turn}", await invoke(graph, {"value": turn, "log": []}, config, api))
    history = await get_history(graph, config, api)
    rec.record("history", history)
    rec.record_calls("calls.before")
    # the second turn's checkpoint before the subgraph ran, and the first turn's
    before_child = [s for s in history if s.next == ("child",)]
    for n, snapshot in enumerate(before_child[1:]):
        rec.record(f"replay.{n}", await invoke(graph, None, snapshot.config, api))
        rec.record(f"replay.{n}.state", await get_state(graph, config, api, subgraphs=True))
    rec.record_calls("calls.after_replay")
    rec.record("history.after", await get_history(graph, config, api))
    return rec


# --------------------------------------------------------------------------------------
# 7. Durability modes
# --------------------------------------------------------------------------------------


async def scenario_durability(
    checkpointer: BaseCheckpointSaver, api: Api, durability: str
) -> Recorder:
    rec = Recorder(api)
    graph = build_chat_graph(checkpointer, rec)
    config = thread(f"durability-{durability}")
    for i, turn in enumerate(CHAT_TURNS_DURABILITY):
        out = await invoke(graph, _human(turn), config, api, durability=durability)
        rec.record(f"invoke[{i}]", out)
        rec.record(f"state[{i}]", await get_state(graph, config, api))
        rec.record(f"history[{i}]", await get_history(graph, config, api))
    rec.record_calls()
    rec.merge("interrupts.", await scenario_interrupts(checkpointer, api, durability=durability))
    return rec


# --------------------------------------------------------------------------------------
# 8. Failing node, pending writes, resume after the fix
# --------------------------------------------------------------------------------------


class FlakyError(RuntimeError):
    pass


def build_flaky_graph(checkpointer: Any, rec: Recorder, control: dict) -> Any:
    def steady(state: LogState) -> dict:
        rec.called("steady")
        return {"log": ["steady"]}

    def flaky(state: LogState) -> dict:
        rec.called("flaky")
        if control["fail"]:
            # fail only once "steady" has finished and its writes were handed to the
            # checkpointer (the test releases us when it sees steady's stream update),
            # otherwise LangGraph would cancel it and the outcome would be racy
            if not control["release"].wait(timeout=20):
                raise TimeoutError("steady never finished")
            raise FlakyError("flaky failed on purpose")
        return {"log": ["flaky"]}

    def join(state: LogState) -> dict:
        rec.called("join")
        return {"log": ["join"]}

    builder = StateGraph(LogState)
    builder.add_node(steady)
    builder.add_node(flaky)
    builder.add_node(join)
    builder.add_edge(START, "steady")
    builder.add_edge(START, "flaky")
    builder.add_edge(["steady", "flaky"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer)


async def scenario_error(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    control = {"fail": True, "release": threading.Event()}
    graph = build_flaky_graph(checkpointer, rec, control)
    config = thread("errors")

    seen: list[Any] = []

    def on_chunk(chunk: Any) -> None:
        seen.append(chunk)
        mode, payload = chunk
        if mode == "updates" and "steady" in payload:
            control["release"].set()

    try:
        # "custom" makes the sync stream deliver updates while other tasks still run
        await stream(
            graph,
            {"log": ["start"]},
            config,
            api,
            on_chunk=on_chunk,
            stream_mode=["updates", "custom"],
        )
    except FlakyError as exc:
        rec.record_error("stream.error", exc)
    else:
        raise AssertionError("the flaky node did not fail")
    rec.record("stream.seen", seen)
    rec.record("state.failed", await get_state(graph, config, api))
    rec.record("history.failed", await get_history(graph, config, api))
    rec.record_calls("calls.failed")

    # still failing: retrying without a fix surfaces the error again
    try:
        await invoke(graph, None, config, api)
    except FlakyError as exc:
        rec.record_error("retry.error", exc)
    else:
        raise AssertionError("the flaky node did not fail again")
    rec.record("state.failed_again", await get_state(graph, config, api))
    rec.record_calls("calls.failed_again")

    control["fail"] = False
    rec.record("resume", await invoke(graph, None, config, api))
    rec.record("state.final", await get_state(graph, config, api))
    rec.record("history.final", await get_history(graph, config, api))
    rec.record_calls("calls.final")
    return rec


# --------------------------------------------------------------------------------------
# Rich value types in state
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = "p"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Profile(pydantic.BaseModel):
    name: str
    born: dt.date
    tags: list[str]
    score: Decimal


def rich_value() -> dict:
    return {
        "when": dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone.utc),
        "naive": dt.datetime(2001, 1, 2, 3, 4, 5),
        "offset": dt.datetime(
            2020, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
        ),
        "day": dt.date(1999, 12, 31),
        "clock": dt.time(8, 30, 15),
        "span": dt.timedelta(days=2, seconds=5, microseconds=7),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "money": Decimal("12345.678900"),
        "blob": b"\x00\x01binary\xff",
        "tags": {"x", "y", "z"},
        "frozen": frozenset({1, 2}),
        "point": Point(1, 2.5, "origin-ish"),
        "colour": Colour.BLUE,
        "profile": Profile(
            name="Ada", born=dt.date(1815, 12, 10), tags=["math"], score=Decimal("9.5")
        ),
        "by_id": {1: {"name": "one", 2: ["nested", {3: None}]}, 10: {}},
        "floats": [1.0, 0.1, -0.0, 1e300],
        "big": 2**62,
        "flags": [True, False, None],
        "text": "unicode: \u00e9\u4e2d\U0001f600 and a NUL-free string",
    }


class RichState(TypedDict, total=False):
    data: Any
    seen: dict[str, str]
    log: Annotated[list[str], operator.add]


def build_rich_graph(checkpointer: Any, rec: Recorder) -> Any:
    def produce(state: RichState) -> dict:
        rec.called("produce")
        return {"data": rich_value(), "log": ["produced"]}

    def pause(state: RichState) -> dict:
        rec.called("pause")
        # after resuming, the state below comes back from the checkpointer
        interrupt("carry on?")
        return {"log": ["resumed"]}

    def inspect_types(state: RichState) -> dict:
        rec.called("inspect")
        return {"seen": {k: type(v).__qualname__ for k, v in state["data"].items()}}

    builder = StateGraph(RichState)
    builder.add_node(produce)
    builder.add_node(pause)
    builder.add_node("inspect", inspect_types)
    builder.add_edge(START, "produce")
    builder.add_edge("produce", "pause")
    builder.add_edge("pause", "inspect")
    builder.add_edge("inspect", END)
    return builder.compile(checkpointer=checkpointer)


async def scenario_rich_values(checkpointer: BaseCheckpointSaver, api: Api) -> Recorder:
    rec = Recorder(api)
    graph = build_rich_graph(checkpointer, rec)
    config = thread("rich")

    # rich values also in the input (saved as pending writes of the input checkpoint)
    rec.record(
        "invoke", await invoke(graph, {"data": {"input": rich_value()}, "log": []}, config, api)
    )
    rec.record("state.paused", await get_state(graph, config, api))
    rec.record("resume", await invoke(graph, Command(resume=True), config, api))
    rec.record("state.final", await get_state(graph, config, api))
    rec.record("history", await get_history(graph, config, api))
    # update_state with rich values too
    await update_state(graph, config, {"data": {"updated": rich_value()}}, api, as_node="inspect")
    rec.record("state.updated", await get_state(graph, config, api))
    rec.record_calls()
    return rec


async def rich_values_state(checkpointer: BaseCheckpointSaver, api: Api) -> dict:
    """Final raw values of the rich-types graph, for direct type assertions."""
    rec = Recorder(api)
    graph = build_rich_graph(checkpointer, rec)
    config = thread("rich-raw")
    await invoke(graph, {"data": None, "log": []}, config, api)
    await invoke(graph, Command(resume=True), config, api)
    return (await get_state(graph, config, api)).values


class TupleState(TypedDict, total=False):
    pair: Any
    nested: Any


async def tuple_state(checkpointer: BaseCheckpointSaver, api: Api) -> dict:
    """State holding tuples, as read back through `checkpointer`."""
    builder = StateGraph(TupleState)
    builder.add_node(
        "make", lambda _: {"pair": (1, "two", 3.0), "nested": [("a", 1), ("b", (2, 3))]}
    )
    builder.add_edge(START, "make")
    graph = builder.compile(checkpointer=checkpointer)
    config = thread("tuples")
    await invoke(graph, {}, config, api)
    return dict((await get_state(graph, config, api)).values)
