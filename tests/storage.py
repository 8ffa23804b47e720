"""Helpers for tests of what is stored: schema versions, reference integrity."""

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
