"""A graph run under LANGGRAPH_STRICT_MSGPACK (LangGraph copies the saver through
`with_allowlist`, its allowlist derived from the state schema); run by test_dropin.py."""

import sys
from dataclasses import dataclass
from typing import TypedDict

from langgraph.graph import START, StateGraph

from langgraph_store_dual import from_url


@dataclass
class Route:
    prefix: str
    via: str


class State(TypedDict, total=False):
    route: Route
    hops: int


def step(state: State) -> dict:
    return {"route": Route("10.0.0.0/8", "edge-7"), "hops": state.get("hops", 0) + 1}


builder = StateGraph(State)
builder.add_node(step)
builder.add_edge(START, "step")
with from_url(sys.argv[1]) as saver:
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "strict"}}
    graph.invoke({"hops": 0}, config)
    graph.invoke({"hops": 5}, config)
    state = graph.get_state(config).values
    assert type(state["route"]) is Route, type(state["route"])
    assert state["hops"] == 6
    print("ok", type(graph.checkpointer).__name__, graph.checkpointer is not saver)
