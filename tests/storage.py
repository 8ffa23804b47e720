"""Helpers for tests of what is stored: schema versions, reference integrity, a chat
graph."""

from __future__ import annotations

from typing import Any

from langgraph_store_dual.core.dialect import Dialect


def versions(dialect: Dialect) -> list[tuple[int]]:
    """The rows of `schema_version` after `setup()`: one per migration."""
    return [(v,) for v in range(1, len(dialect.migrations) + 1)]


async def assert_references(saver: Any, thread_id: str | None = None) -> None:
    """Every stored value referred to exists, and every stored value is referred to."""
    problems = await saver.acheck_references(thread_id)
    assert not problems, "\n".join(problems)


def build_chat_graph(checkpointer: Any, replies: list[str]) -> Any:
    """A one-node chat graph whose fake model answers with `replies`, in order."""
    # imported here: the test modules' spawned processes import this one and need none of it
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    model = GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))

    def agent(state: Any) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=checkpointer)
