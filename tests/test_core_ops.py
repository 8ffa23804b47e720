"""The sans-I/O operations, driven without a database."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from langgraph_store_dual.codec import JsonCodec
from langgraph_store_dual.core import ops
from langgraph_store_dual.core.stmt import Sql, merged
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
    """On PostgreSQL the thread upsert rides along as a CTE: still one statement."""
    checkpoint = empty_checkpoint()
    planned = ops.single_statement(ops.put(POSTGRES, CODEC, CONFIG, checkpoint, {}, {}))
    assert isinstance(planned, tuple)
    stmt, config = planned
    assert stmt.sql.startswith("WITH then_ AS (INSERT INTO threads") and not stmt.fetch
    assert stmt.sql.count("%s") == 0  # the touch's parameters are named like the put's
    assert stmt.sql.endswith(POSTGRES.upsert_checkpoint.body)
    touch = [stmt.params[k] for k in ("thread_id", "user_id", "title", "head_ts")]
    assert touch == ["t", None, None, checkpoint["id"]]
    assert config["configurable"]["checkpoint_id"] == checkpoint["id"]


def test_a_put_on_sqlite_touches_its_thread_in_the_same_transaction() -> None:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [("user", "Where is  my\nparcel?")]}
    config = {"configurable": {**CONFIG["configurable"], "user_id": "ana"}}
    seen, _ = trace(ops.put(SQLITE, CODEC, config, checkpoint, {}, {}), {})
    assert [s.sql for s in seen] == [SQLITE.upsert_checkpoint.text, SQLITE.threads.touch.text]
    touch = {k: seen[1].params[k] for k in ("thread_id", "user_id", "title", "head_ts")}
    assert touch == {
        "thread_id": "t",
        "user_id": "ana",
        "title": "Where is my parcel?",
        "head_ts": checkpoint["id"],
    }


def test_a_thread_upsert_joins_a_statement_that_has_its_own_ctes() -> None:
    first = Sql("INSERT INTO t SELECT * FROM x", ("x AS (SELECT %(a)s)",), recursive=True)
    [joined] = POSTGRES.together(first, Sql("INSERT INTO u VALUES (%(b)s)"))
    assert joined.text == (
        "WITH RECURSIVE then_ AS (INSERT INTO u VALUES (%(b)s)), x AS (SELECT %(a)s) "
        "INSERT INTO t SELECT * FROM x"
    )
    assert SQLITE.together(first, Sql("INSERT INTO u")) == [first, Sql("INSERT INTO u")]
    with pytest.raises(ValueError, match="cannot join"):
        first.with_cte("then_", first)


def test_statements_joined_into_one_bind_a_shared_name_to_one_value() -> None:
    assert merged({"thread_id": "t", "a": 1}, {"thread_id": "t", "b": 2}) == {
        "thread_id": "t",
        "a": 1,
        "b": 2,
    }
    with pytest.raises(ValueError, match="'thread_id' to different values"):
        merged({"thread_id": "t"}, {"thread_id": "u"})


def test_only_interrupts_and_errors_of_the_root_graph_note_a_run_state() -> None:
    config = {"configurable": {**CONFIG["configurable"], "checkpoint_id": "c1"}}
    for writes, ns, state in [
        ([("a", 1)], "", None),
        ([("__interrupt__", ())], "", "interrupted"),
        ([("a", 1), ("__error__", ValueError("x"))], "", "error"),
        ([("__interrupt__", ())], "child:1", None),
    ]:
        conf = {"configurable": {**config["configurable"], "checkpoint_ns": ns}}
        seen, _ = trace(ops.put_writes(SQLITE, CODEC, conf, writes, "task", ""), {})
        noted = [s.params for s in seen if s.sql == SQLITE.threads.note_state.text]
        expected = {"thread_id": "t", "user_id": None, "state": state, "state_ts": "c1"}
        assert [{k: p[k] for k in expected} for p in noted] == ([expected] if state else [])


def test_a_tasks_writes_are_one_row_in_one_statement() -> None:
    config = {"configurable": {**CONFIG["configurable"], "checkpoint_id": "c1"}}
    writes = [("a", 1), ("b", 2), ("__error__", "x"), ("__error__", "y")]
    for dialect in (SQLITE, POSTGRES):
        one = ops.single_statement(ops.put_writes(dialect, CODEC, config, writes[:2], "task", "p"))
        assert isinstance(one, tuple) and not one[0].many
        assert one[0].params == {
            "thread_id": "t",
            "checkpoint_ns": "",
            "thread_ts": "c1",
            "task_id": "task",
            "task_path": "p",
            "writes": '[[0,"a",1],[1,"b",2]]',
        }
        # a special channel's index is fixed, and the last of one call is kept
        seen, _ = trace(ops.put_writes(dialect, CODEC, config, writes, "task", "p"), {})
        assert "INSERT INTO checkpoint_writes" in seen[0].sql
        assert seen[0].params["writes"] == '[[0,"a",1],[1,"b",2],[-1,"__error__","y"]]'
    interrupt = [("a", 1), ("__interrupt__", ())]
    one = ops.single_statement(ops.put_writes(POSTGRES, CODEC, config, interrupt, "task", ""))
    assert isinstance(one, tuple) and "INSERT INTO checkpoint_writes" in one[0].sql
    assert one[0].sql.startswith("WITH then_ AS") and one[0].params["state"] == "interrupted"


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
