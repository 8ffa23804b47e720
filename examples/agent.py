"""A small tool-calling network-ops agent with a deterministic fake chat model.

Shared by the demo, the tests and the benchmarks: a real compiled LangGraph graph whose
checkpoints look like production ones (human, AI with tool calls and usage metadata,
tool results), without a language model or a network.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition


@tool
def show_route(prefix: str) -> str:
    """Show the BGP route for a prefix."""
    return (
        f"BGP routing table entry for {prefix}: paths 2 available, best #1; "
        "AS path 64512 64513, next hop 10.0.0.2, origin IGP, localpref 100, valid, external"
    )


def scripted_replies(turns: int, answer_chars: int = 400) -> Iterator[AIMessage]:
    """Per turn: an AI message calling `show_route`, then a final answer of `answer_chars`."""
    ids = count(1)
    for turn in range(turns):
        yield AIMessage(
            content="",
            id=f"ai-{next(ids)}",
            tool_calls=[
                {
                    "name": "show_route",
                    "args": {"prefix": f"10.{turn % 250}.0.0/16"},
                    "id": f"call-{turn}",
                }
            ],
            usage_metadata={
                "input_tokens": 120 + turn,
                "output_tokens": 18,
                "total_tokens": 138 + turn,
            },
        )
        text = f"Turn {turn}: the prefix is reachable through AS 64513; the route-map permits it. "
        yield AIMessage(
            content=(text * (answer_chars // len(text) + 1))[:answer_chars],
            id=f"ai-{next(ids)}",
            usage_metadata={
                "input_tokens": 200 + turn,
                "output_tokens": 90,
                "total_tokens": 290 + turn,
            },
        )


def build_agent(turns: int = 1000, answer_chars: int = 400) -> StateGraph:
    """The uncompiled agent graph: `agent` (fake model) <-> `tools` until a final answer."""
    model = GenericFakeChatModel(messages=scripted_replies(turns, answer_chars))

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([show_route]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder
