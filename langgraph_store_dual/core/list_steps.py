"""`list` as one sans-I/O generator, driven blocking by `SyncSaver.list` and awaited by
`AsyncSaver.alist`.

The generator yields what it needs: `Run` (run an operation, send back its result),
`Chunk` (send the next rows of the plan's statement, an empty list at the end) or
`Emit` (hand these tuples to the caller, send None), and returns when the listing ends.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple

from ..codec import JsonCodec
from . import ops
from .dialect import Dialect
from .stmt import Params


@dataclass(frozen=True)
class Run:
    """Run `op` in one transaction; send back its result."""

    op: ops.Op[Any]


@dataclass(frozen=True)
class Chunk:
    """Send up to `size` further rows of the statement `sql` (streamed, opened on the
    first `Chunk`); an empty list when there are no more."""

    sql: str
    params: Params
    size: int


@dataclass(frozen=True)
class Emit:
    """Give these tuples to the caller; send None."""

    items: list[CheckpointTuple]


Step = Run | Chunk | Emit
Steps = Generator[Step, Any, None]


def _nothing() -> ops.Op[None]:
    return
    yield


def list_steps(
    dialect: Dialect,
    codec: JsonCodec,
    plan: ops.ListPlan,
    caches: ops.ValueCaches,
    *,
    schema_ready: bool,
    in_pages: bool,
    size: int,
) -> Steps:
    """The steps of one `list`. `in_pages`: read `size` rows per short operation
    (`ops.ListPages`) rather than stream one statement left open between chunks."""
    if not schema_ready:
        yield Run(_nothing())  # the first use sets up (or checks) the schema
    reader = ops.ListReader(dialect, codec, plan, caches)
    if reader.done:
        return
    if in_pages:
        pages = ops.ListPages(dialect, plan, reader, size)
        while not reader.done and (page := pages.next()) is not None:
            yield Emit(reader.tuples((yield Run(page))))
        return
    while rows := (yield Chunk(plan.sql, plan.params, size)):
        if (fetch := reader.fetch(rows)) is not None:
            yield Run(fetch)
        items, vanished = reader.streamed(rows)
        if vanished is not None:
            yield Run(vanished.check())
        yield Emit(items)
        if reader.done:
            return


def advance(steps: Steps, reply: Any) -> Step | None:
    """The next step of `steps` after sending `reply`, or None when the listing ended."""
    try:
        return steps.send(reply)
    except StopIteration:
        return None
