"""The sans-I/O operations, driven without a database."""

from __future__ import annotations

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from langgraph_store_dual.codec import JsonCodec
from langgraph_store_dual.core import ops
from langgraph_store_dual.postgres.dialect import POSTGRES
from langgraph_store_dual.sqlite.dialect import SQLITE

CODEC = JsonCodec(JsonPlusSerializer())
CONFIG = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def trace(op: ops.Op, answers: dict[str, list]) -> tuple[list[ops.Stmt], object]:
    """Run `op`, answering each statement by the first matching SQL fragment."""
    seen: list[ops.Stmt] = []

    def execute(stmt: ops.Stmt) -> list:
        seen.append(stmt)
        return next((rows for part, rows in answers.items() if part in stmt.sql), [])

    return seen, ops.run(op, execute)


def test_a_put_is_one_statement_an_engine_may_run_alone() -> None:
    checkpoint = empty_checkpoint()
    planned = ops.single_statement(ops.put(POSTGRES, CODEC, CONFIG, checkpoint, {}, {}))
    assert isinstance(planned, tuple)
    stmt, config = planned
    assert stmt.sql == POSTGRES.upsert_checkpoint and not stmt.fetch
    assert config["configurable"]["checkpoint_id"] == checkpoint["id"]


def test_one_write_becomes_a_single_statement_several_do_not() -> None:
    config = {"configurable": {**CONFIG["configurable"], "checkpoint_id": "c1"}}
    one = ops.single_statement(ops.put_writes(POSTGRES, CODEC, config, [("a", 1)], "task", ""))
    assert isinstance(one, tuple) and not one[0].many and one[0].params[5] == "a"
    two = ops.put_writes(POSTGRES, CODEC, config, [("a", 1), ("b", 2)], "task", "")
    planned = ops.single_statement(two)
    assert not isinstance(planned, tuple)
    seen, _ = trace(planned, {})
    assert [(s.many, len(s.params)) for s in seen] == [(True, 2)]


def test_a_resumed_operation_runs_the_same_statements_with_the_same_answers() -> None:
    answers = {"DISTINCT ON": [("", "c3", None)], "SELECT max(x.thread_ts)": [("", "c3", None)]}
    for dialect in (SQLITE, POSTGRES):
        direct, _ = trace(ops.prune(dialect, ["t", "u"], "keep_latest"), answers)
        planned = ops.single_statement(ops.prune(dialect, ["t", "u"], "keep_latest"))
        assert not isinstance(planned, tuple)
        resumed, _ = trace(planned, answers)
        # per thread: heads, 2 deletions, a sweep of values; a lock first where needed
        assert resumed == direct and len(direct) == 8 + bool(dialect.lock_threads)


def test_an_operation_without_statements_returns_its_result() -> None:
    planned = ops.single_statement(ops.delete_for_runs(SQLITE, []))
    assert not isinstance(planned, tuple)
    assert trace(planned, {}) == ([], None)
