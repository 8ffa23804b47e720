"""Databases of the official savers, written by real graphs: the graphs (a `Send`
fan-out, a stateful subgraph with an interrupt; a linear chat), the official saver of a
URL's engine, and a class only a pickle can hold. Shared by the import tests."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver as OfficialPostgres
from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSqlite
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send, interrupt

# -- a graph with a Send fan-out, a stateful subgraph and an interrupt ------------------


class Child(TypedDict, total=False):
    notes: Annotated[list[str], operator.add]


class Parent(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    items: list[str]
    done: Annotated[list[str], operator.add]
    notes: Annotated[list[str], operator.add]


def review(state: Child) -> Child:
    answer = interrupt({"question": "approve?", "seen": len(state.get("notes", []))})
    return {"notes": [f"review: {answer}"]}


def fan(state: Parent) -> list[Send]:
    return [Send("work", {"item": item}) for item in state["items"]]


class Item(TypedDict):
    item: str


def work(state: Item) -> Parent:
    return {"done": [state["item"].upper()]}


def reply(state: Parent) -> Parent:
    text = f"done {sorted(state['done'])} notes {state['notes']}"
    return {"messages": [AIMessage(text)]}


def build(checkpointer: Any) -> Any:
    child = StateGraph(Child)
    child.add_node("review", review)
    child.add_edge(START, "review")
    child.add_edge("review", END)
    parent = StateGraph(Parent)
    parent.add_node("work", work)
    parent.add_node("child", child.compile(checkpointer=True))  # keeps its state per thread
    parent.add_node("reply", reply)
    parent.add_conditional_edges(START, fan, ["work"])
    parent.add_edge("work", "child")
    parent.add_edge("child", "reply")
    parent.add_edge("reply", END)
    return parent.compile(checkpointer=checkpointer)


def ask(text: str, *items: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)], "items": list(items)}


def linear(checkpointer: Any) -> Any:
    graph = StateGraph(Parent)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(checkpointer=checkpointer)


@contextmanager
def official(url: str, **options: Any) -> Iterator[Any]:
    """The official saver of the URL's engine, set up."""
    if url.startswith("sqlite:"):
        with OfficialSqlite.from_conn_string(url.removeprefix("sqlite:///")) as saver:
            if "serde" in options:
                saver.serde = options["serde"]
            yield saver
    else:
        with OfficialPostgres.from_conn_string(url) as saver:
            saver.setup()
            if "serde" in options:
                saver.serde = options["serde"]
            yield saver


class Opaque:
    """A class msgpack cannot encode: the official serializer pickles it (pickle_fallback)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.n == self.n
