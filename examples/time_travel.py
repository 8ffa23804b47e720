"""Time travel with a stateful subgraph: three turns, the history, a replay, delete.

    python examples/time_travel.py [--url URL] [--api sync|async|both]

URL: `sqlite:///time_travel.db` (the default; `$LGSD_URL` when set) or
`postgresql://user@host:5432/db`. Prints one line per API and exits 1 on any mismatch.

The app: a parent graph `assistant -> notebook`. `assistant` answers with a scripted fake
chat model (no API key); `notebook` is a compiled subgraph with its own checkpoints
(`checkpointer=True`), so its `notes` survive from turn to turn under the checkpoint
namespace "notebook" of the same thread. Each turn it notes the question.

The story checked, through the sync API and then the async API:
1. three turns: six messages, three notes;
2. `get_state_history`: twelve checkpoints, newest first;
3. replay turn 2 from the checkpoint where the assistant had answered but the notebook had
   not run (`graph.invoke(None, that_config)`): LangGraph restores the subgraph as it was
   at that point, with `saver.list(subgraph_config, before={"configurable":
   {"checkpoint_id": ...}}, limit=1)`, so the notebook holds two notes, not three;
4. the history gains a fork and the replayed step; the abandoned turn 3 stays in it;
5. `delete_thread` removes the thread, subgraph included.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from langgraph_store_dual import from_url
from langgraph_store_dual.urls import redact

QUESTIONS = ["Is edge-7 up?", "Why is 10.1.0.0/16 missing?", "Write the ticket summary."]
NOTEBOOK_NS = "notebook"  # the stateful subgraph's checkpoint namespace: its node's name


# ----------------------------------------------------------------------------- the app


class ChatState(MessagesState):
    note_count: int  # written by the notebook subgraph: how many notes it holds


class NotebookState(MessagesState):
    notes: Annotated[list[str], operator.add]  # the subgraph's own channel, not the parent's
    note_count: int


def take_note(state: NotebookState) -> dict[str, Any]:
    question = next(m for m in reversed(state["messages"]) if m.type == "human")
    return {"notes": [question.content], "note_count": len(state.get("notes", [])) + 1}


def build_graph(checkpointer: Any) -> CompiledStateGraph:
    """The parent graph, with a fresh scripted model: one answer per turn."""
    answers = iter(AIMessage(f"Answer {i}.", id=f"ai-{i}") for i in range(1, 10))
    model = GenericFakeChatModel(messages=answers)

    def assistant(state: ChatState) -> dict[str, list[AnyMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    notebook = StateGraph(NotebookState)
    notebook.add_node("take_note", take_note)
    notebook.add_edge(START, "take_note")

    chat = StateGraph(ChatState)
    chat.add_node("assistant", assistant)
    chat.add_node(NOTEBOOK_NS, notebook.compile(checkpointer=True))  # keeps its own state
    chat.add_edge(START, "assistant")
    chat.add_edge("assistant", NOTEBOOK_NS)
    return chat.compile(checkpointer=checkpointer)


def replay_point(history: list[StateSnapshot]) -> StateSnapshot:
    """Turn 2, after the assistant answered and before the notebook ran."""
    for snapshot in history:
        if snapshot.next == (NOTEBOOK_NS,) and len(snapshot.values["messages"]) == 4:
            return snapshot
    raise LookupError("the history has no checkpoint of turn 2 waiting for the notebook")


# ---------------------------------------------------------------- the story, two APIs


@dataclass
class Observed:
    """What one run of the story saw; `check` compares it with what LangGraph promises."""

    after_turns: dict[str, Any] = field(default_factory=dict)
    notes_after_turns: list[str] = field(default_factory=list)
    history: list[StateSnapshot] = field(default_factory=list)
    replayed_from: StateSnapshot | None = None
    replayed: dict[str, Any] = field(default_factory=dict)
    notes_after_replay: list[str] = field(default_factory=list)
    history_after_replay: list[StateSnapshot] = field(default_factory=list)
    after_delete: tuple[dict[str, Any], int, int] | None = None  # state, checkpoints, subgraph's


def thread_configs(thread_id: str) -> tuple[dict, dict]:
    """The thread's config, and the config of its notebook subgraph's checkpoints."""
    config = {"configurable": {"thread_id": thread_id}}
    return config, {"configurable": {"thread_id": thread_id, "checkpoint_ns": NOTEBOOK_NS}}


def checkpoint_id(config: dict | None) -> str | None:
    return (config or {}).get("configurable", {}).get("checkpoint_id")


def notes_of(saved: Any) -> list[str]:
    return saved.checkpoint["channel_values"].get("notes", []) if saved else []


def story_sync(url: str, thread_id: str) -> Observed:
    config, notebook_config = thread_configs(thread_id)
    seen = Observed()
    with from_url(url) as saver:
        saver.delete_thread(thread_id)  # start afresh on every run
        graph = build_graph(saver)
        for question in QUESTIONS:
            seen.after_turns = graph.invoke({"messages": [("user", question)]}, config)
        seen.notes_after_turns = notes_of(saver.get_tuple(notebook_config))
        seen.history = list(graph.get_state_history(config))

        seen.replayed_from = replay_point(seen.history)
        seen.replayed = graph.invoke(None, seen.replayed_from.config)  # runs `notebook` again
        seen.notes_after_replay = notes_of(saver.get_tuple(notebook_config))
        seen.history_after_replay = list(graph.get_state_history(config))

        saver.delete_thread(thread_id)
        seen.after_delete = (
            graph.get_state(config).values,
            len(list(saver.list(config))),
            len(list(saver.list(notebook_config))),
        )
    return seen


async def story_async(url: str, thread_id: str) -> Observed:
    config, notebook_config = thread_configs(thread_id)
    seen = Observed()
    async with from_url(url) as saver:
        await saver.adelete_thread(thread_id)
        graph = build_graph(saver)
        for question in QUESTIONS:
            seen.after_turns = await graph.ainvoke({"messages": [("user", question)]}, config)
        seen.notes_after_turns = notes_of(await saver.aget_tuple(notebook_config))
        seen.history = [s async for s in graph.aget_state_history(config)]

        seen.replayed_from = replay_point(seen.history)
        seen.replayed = await graph.ainvoke(None, seen.replayed_from.config)
        seen.notes_after_replay = notes_of(await saver.aget_tuple(notebook_config))
        seen.history_after_replay = [s async for s in graph.aget_state_history(config)]

        await saver.adelete_thread(thread_id)
        seen.after_delete = (
            (await graph.aget_state(config)).values,
            len([t async for t in saver.alist(config)]),
            len([t async for t in saver.alist(notebook_config)]),
        )
    return seen


def check(seen: Observed) -> list[str]:
    """The mismatches between what the run saw and what it should have seen."""
    problems: list[str] = []

    def expect(what: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{what}: got {got!r}, want {want!r}")

    def contents(values: dict[str, Any]) -> list[str]:
        return [m.content for m in values.get("messages", [])]

    # 1. three turns; the notebook kept its notes across them
    expect("messages after 3 turns", len(seen.after_turns["messages"]), 6)
    expect("note_count after 3 turns", seen.after_turns.get("note_count"), 3)
    expect("notebook after 3 turns", seen.notes_after_turns, QUESTIONS)
    # 2. per turn: the input checkpoint, then one after START, assistant and notebook
    expect("checkpoints after 3 turns", len(seen.history), 12)
    expect("steps, newest first", [s.metadata["step"] for s in seen.history], [*range(10, -2, -1)])
    expect("newest checkpoint = final state", seen.history[0].values, seen.after_turns)
    # 3. the replay continues turn 2; the subgraph starts from its notes before that point
    assert seen.replayed_from is not None and seen.after_delete is not None  # a complete run
    expect("replayed from step", seen.replayed_from.metadata["step"], 5)
    expect("replayed messages", contents(seen.replayed), contents(seen.replayed_from.values))
    expect("note_count after replay", seen.replayed.get("note_count"), 2)
    expect("notebook after replay", seen.notes_after_replay, QUESTIONS[:2])
    # 4. a fork of the replay point, then the replayed notebook step; turn 3 is still there
    history = seen.history_after_replay
    newest_two = [(s.metadata["source"], s.metadata["step"]) for s in history[:2]]
    expect("checkpoints after replay", len(history), 14)
    expect("newest two (source, step)", newest_two, [("loop", 7), ("fork", 6)])
    expect("newest checkpoint = replayed state", history[0].values, seen.replayed)
    if len(history) >= 2:
        fork = history[1]
        expect(
            "the replayed step's parent",
            checkpoint_id(history[0].parent_config),
            checkpoint_id(fork.config),
        )
        expect(
            "the fork's parent",
            checkpoint_id(fork.parent_config),
            checkpoint_id(seen.replayed_from.config),
        )
    expect("old turns kept", [s.values for s in history[2:]], [s.values for s in seen.history])
    # 5. delete_thread: no state, no checkpoints, in the parent graph or in the subgraph
    state, checkpoints, subgraph_checkpoints = seen.after_delete
    expect("state after delete_thread", state, {})
    expect("checkpoints after delete_thread", (checkpoints, subgraph_checkpoints), (0, 0))
    return problems


# ------------------------------------------------------------------------------- main


def run(api: str, story: Callable[[], Observed]) -> bool:
    """Run one story, print its line; True when everything matched."""
    started = time.perf_counter()
    try:
        seen = story()
        took = f"({time.perf_counter() - started:.2f} s)"
        problems = check(seen)
    except Exception as exc:
        traceback.print_exc()
        print(f"  {api:<5} FAIL {type(exc).__name__}: {exc}".splitlines()[0])
        return False
    if problems:
        print(f"  {api:<5} FAIL {len(problems)} mismatch(es) {took}")
        for problem in problems:
            print(f"        - {problem}")
        return False
    print(
        f"  {api:<5} ok   3 turns, {len(seen.history)} checkpoints; replayed turn 2: the notebook "
        f"back to {len(seen.notes_after_replay)} notes, "
        f"{len(seen.history_after_replay)} checkpoints; thread deleted {took}"
    )
    return True


def describe_driver(url: str) -> str:
    if not url.startswith("postgres"):
        return "sqlite3 / aiosqlite"
    import psycopg

    libpq = psycopg.pq.version()
    return (
        f"psycopg {psycopg.__version__}, {psycopg.pq.__impl__} implementation, "
        f"libpq {libpq // 10000}.{libpq % 100}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("LGSD_URL", "sqlite:///time_travel.db"),
        help="database URL (default: $LGSD_URL, else sqlite:///time_travel.db)",
    )
    parser.add_argument("--api", choices=["sync", "async", "both"], default="both")
    args = parser.parse_args()

    shown = redact(args.url) if args.url.startswith("postgres") else args.url  # sqlite: no password
    print(f"time travel on {shown} ({describe_driver(args.url)})")
    ok = True
    if args.api in ("sync", "both"):
        ok &= run("sync", lambda: story_sync(args.url, "time-travel-sync"))
    if args.api in ("async", "both"):
        ok &= run("async", lambda: asyncio.run(story_async(args.url, "time-travel-async")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
