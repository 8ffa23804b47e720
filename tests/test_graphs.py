"""Behaviour of real LangGraph graphs on our savers, compared with LangGraph's InMemorySaver.

Each test runs a scenario from ``tests/scenarios.py`` twice with the same API ("sync" or
"async"): once on the ``saver`` under test and once on a fresh ``InMemorySaver``; the
normalised traces (outputs, snapshots, histories, node execution counts) must be equal.
A few plain assertions on the reference run make sure each scenario really exercises what
it claims to (so that two equally broken runs cannot pass silently).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import StateSnapshot

try:
    from tests import scenarios as sc
except ModuleNotFoundError as exc:  # the rootdir is not on sys.path: tests/ itself is
    if exc.name not in ("tests", "tests.scenarios"):
        raise
    import scenarios as sc  # type: ignore[no-redef]


async def run_both(
    scenario: Callable[..., Awaitable[sc.Recorder]], saver: Any, api: str, *args: Any
) -> tuple[sc.Recorder, sc.Recorder]:
    got = await scenario(saver, api, *args)
    want = await scenario(InMemorySaver(), api, *args)
    assert_same_trace(got, want)
    return got, want


def assert_same_trace(got: sc.Recorder, want: sc.Recorder) -> None:
    assert [tag for tag, _ in got.trace] == [tag for tag, _ in want.trace]
    for (tag, got_value), (_, want_value) in zip(got.trace, want.trace, strict=True):
        if got_value != want_value:
            where = "\n  ".join(sc.differences(got_value, want_value, tag))
            pytest.fail(f"{tag!r} differs from InMemorySaver (ours != reference):\n  {where}")


def message_ids(snapshot: StateSnapshot) -> list[str]:
    return [m.id for m in snapshot.values["messages"]]


# --------------------------------------------------------------------------------------


async def test_chat_graph_with_tools(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_chat, saver, api)
    for rec in (got, want):
        assert message_ids(rec.raw["a.state[2]"]) == [
            "h-a1", "ai-a1-1", "tool-call-a1", "ai-a1-2",
            "h-a2", "ai-a2-1",
            "h-a3", "ai-a3-1", "tool-call-a3-m", "tool-call-a3-a", "ai-a3-2",
        ]  # fmt: skip
        assert rec.raw["a.state[2]"].values["messages"][8].content == "20"
        assert message_ids(rec.raw["b.state"]) == ["h-b1", "ai-b1-1", "tool-call-b1", "ai-b1-2"]
        assert rec.raw["a.state.after_b"].values == rec.raw["a.state[2]"].values
        history = rec.raw["a.history"]
        # 3 turns: each an input checkpoint plus one per step; steps keep counting
        assert [s[:2] for s in sc.summary(history) if s[0] == "input"] == [
            ("input", 7),
            ("input", 4),
            ("input", -1),
        ]
        assert sc.summary(history)[0] == ("loop", 11, ())
        assert len(history) == 13
        for newer, older in itertools.pairwise(history):
            assert newer.parent_config == older.config
        assert history[-1].parent_config is None
        assert len(rec.raw["b.history"]) == 5
        assert rec.raw["unknown.history"] == []
        assert rec.raw["unknown.state"].values == {}
        assert len(rec.raw["a.history.limit"]) == 3
        assert len(rec.raw["a.history.before.limit"]) == 2
        assert [s.metadata["source"] for s in rec.raw["a.history.filter.input"]] == ["input"] * 3
        assert rec.raw["calls"] == {"agent": 7, "tools": 3}


async def test_interrupt_and_resume(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_interrupts, saver, api)
    for rec in (got, want):
        waiting = rec.raw["state.waiting[0]"]
        assert waiting.next == ("ask",)
        assert [i.value for i in waiting.tasks[0].interrupts] == [
            {"question": "What is your name?", "seen": ["start"]}
        ]
        assert [i.value for i in rec.raw["invoke.start"]["__interrupt__"]] == [
            {"question": "What is your name?", "seen": ["start"]}
        ]
        assert [i.value for i in rec.raw["state.waiting[1]"].interrupts] == ["first confirmation?"]
        assert [i.value for i in rec.raw["state.waiting[2]"].tasks[0].interrupts] == [
            {"second": "confirmation?", "first_answer": "yes"}
        ]
        final = rec.raw["state.final"]
        assert final.next == ()
        assert final.tasks == ()
        assert final.values["log"] == ["start", "name=Ada", "first=yes", "second=sure", "done"]
        assert rec.raw["calls"]["ask"] == 2
        assert rec.raw["calls"]["confirm"] == 3
        assert rec.raw["calls"]["confirm.after_first"] == 2
        parallel = rec.raw["parallel.state.waiting"]
        assert parallel.next == ("left", "right")
        assert sorted(i.value for t in parallel.tasks for i in t.interrupts) == [
            "left needs input",
            "right needs input",
        ]
        assert rec.raw["parallel.state.final"].values["log"] == [
            "left=answer-for-left",
            "right=answer-for-right",
        ]


async def test_subgraph_with_interrupt(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_subgraph, saver, api)
    for rec in (got, want):
        nested = rec.raw["wait1.state.subgraphs"]
        assert nested.next == ("review",)
        child = nested.tasks[0].state
        assert isinstance(child, StateSnapshot)
        assert child.values == {"draft": "A NOTE ON OTTERS", "notes": ["written"]}
        assert child.next == ("review",)
        assert child.tasks[0].interrupts[0].value == {
            "review": "A NOTE ON OTTERS",
            "notes": ["written"],
        }
        # without subgraphs=True the task only points at the child's namespace
        plain = rec.raw["wait1.state"].tasks[0].state
        assert not isinstance(plain, StateSnapshot)
        assert plain["configurable"]["checkpoint_ns"].startswith("review:")
        assert rec.raw["wait1.child.history"], "no checkpoint saved for the subgraph"
        child2 = rec.raw["wait2.state.subgraphs"].tasks[0].state
        assert child2.values == {"text": "A NOTE ON OTTERS", "words": 4}
        final = rec.raw["state.final"]
        assert final.values["report"] == "4 words, approved by editor"
        assert final.values["draft"] == "A NOTE ON OTTERS"
        assert "notes" not in final.values
        assert rec.raw["calls"]["child.write"] == 1
        assert rec.raw["calls"]["child.review"] == 2


async def test_send_fanout(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_fanout, saver, api)
    for rec in (got, want):
        assert rec.raw["state.1"].values == {
            "items": [1, 2, 3],
            "results": [10, 20, 30],
            "total": 60,
        }
        assert rec.raw["state.2"].values == {
            "items": [4, 5],
            "results": [10, 20, 30, 40, 50],
            "total": 150,
        }
        fan_steps = [s for s in rec.raw["history"] if s.next and set(s.next) == {"worker"}]
        assert [len(s.next) for s in fan_steps] == [2, 3]
        assert rec.raw["calls"] == {"plan": 2, "reduce": 2, "worker": 5}


async def test_update_state_and_fork(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_update_and_fork, saver, api)
    for rec in (got, want):
        assert rec.raw["state.paused"].next == ("b",)
        updated = rec.raw["state.updated"]
        assert updated.values == {"value": 41, "log": ["a:0", "edited"]}
        assert updated.metadata["source"] == "update"
        assert updated.next == ("b",)
        original = rec.raw["state.original"]
        assert original.values == {"value": 151, "log": ["a:0", "edited", "b:41", "c:51"]}
        assert rec.raw["state.original.again"].values == original.values
        latest = rec.raw["state.latest"]
        assert latest.values == {"value": 109, "log": ["a:0", "forked", "b:-1", "c:9"]}
        fork_branch = rec.raw["branch.fork"]
        original_branch = rec.raw["branch.original"]
        assert [s.values for s in original_branch] == [
            s.values for s in rec.raw["history.original"]
        ]
        # the fork's parent is the checkpoint paused before "b" of the original branch
        assert [s.metadata["source"] for s in fork_branch] == [
            "loop",
            "loop",
            "update",
            "loop",
            "loop",
            "input",
        ]
        assert [s.config for s in fork_branch[3:]] == [s.config for s in original_branch[3:]]
        assert fork_branch[2].parent_config == original_branch[3].config
        assert len(rec.raw["history.all"]) == len(rec.raw["history.original"]) + 3
        assert rec.raw["calls"] == {"a": 1, "b": 2, "c": 2}


async def test_replay_from_older_checkpoint(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_replay, saver, api)
    for rec in (got, want):
        assert rec.raw["calls.before"] == {"a": 1, "b": 1, "c": 1}
        assert rec.raw["calls.after_replay"] == {"a": 1, "b": 2, "c": 2}
        assert rec.raw["calls.after_second_replay"] == {"a": 2, "b": 3, "c": 3}
        assert rec.raw["state.after_replay"].values == rec.raw["history.before"][0].values
        assert rec.raw["replay.from_input"] == {"value": 111, "log": ["a:0", "b:1", "c:11"]}
        # replaying first copies the old checkpoint as a "fork" checkpoint
        assert sc.summary(rec.raw["history.after_replay"])[:3] == [
            ("loop", 4, ()),
            ("loop", 3, ("c",)),
            ("fork", 2, ("b",)),
        ]
        assert len(rec.raw["history.after_replay"]) == len(rec.raw["history.before"]) + 3
        assert sc.summary(rec.raw["history.final"])[4] == ("fork", 0, ("__start__",))
        assert len(rec.raw["history.final"]) == len(rec.raw["history.after_replay"]) + 5


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_durability_modes(saver: Any, api: str, durability: str) -> None:
    got, want = await run_both(sc.scenario_durability, saver, api, durability)
    for rec in (got, want):
        final = rec.raw["state[1]"]
        assert message_ids(final) == [
            "h-d1",
            "ai-d1-1",
            "tool-call-d1",
            "ai-d1-2",
            "h-d2",
            "ai-d2-1",
        ]
        history = rec.raw["history[1]"]
        if durability == "exit":
            # only what exists when each run exits
            assert sc.summary(history) == [("loop", 6, ()), ("loop", 3, ())]
        else:
            assert len(history) == 8
        assert rec.raw["interrupts.state.final"].values["log"][-1] == "done"


async def test_node_error_and_resume(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_error, saver, api)
    for rec in (got, want):
        failed = rec.raw["state.failed"]
        # the latest state already shows the pending write of the task that succeeded
        assert failed.next == ("flaky",)
        assert failed.values == {"log": ["start", "steady"]}
        tasks = {t.name: t for t in failed.tasks}
        # InMemorySaver gives back repr(exception), a str, not the exception
        assert "flaky failed on purpose" in str(tasks["flaky"].error)
        assert "FlakyError" in repr(tasks["flaky"].error)
        assert tasks["steady"].error is None
        assert rec.raw["history.failed"][0].next == ("steady", "flaky")
        assert tasks["steady"].result == {"log": ["steady"]}
        assert rec.raw["calls.failed"] == {"flaky": 1, "steady": 1}
        assert rec.raw["calls.failed_again"] == {"flaky": 2, "steady": 1}
        assert rec.raw["resume"] == {"log": ["start", "flaky", "steady", "join"]}
        # the pending write of "steady" was reused: it never ran again
        assert rec.raw["calls.final"] == {"flaky": 3, "join": 1, "steady": 1}


async def test_rich_values_in_state(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_rich_values, saver, api)
    for rec in (got, want):
        assert rec.raw["state.final"].values["seen"]["when"] == "datetime"


async def test_rich_values_same_types(saver: Any, api: str) -> None:
    got = await sc.rich_values_state(saver, api)
    want = await sc.rich_values_state(InMemorySaver(), api)
    data, ref = got["data"], want["data"]
    assert data.keys() == ref.keys() == sc.rich_value().keys()
    norm = sc.Recorder(api).norm
    mismatches = [
        (key, repr(data[key]), repr(ref[key]))
        for key in ref
        if norm(data[key]) != norm(ref[key]) or data[key] != ref[key]
    ]
    assert mismatches == [], "(key, ours, InMemorySaver's)"
    # what the node saw after the state was loaded back from the checkpointer
    seen = {k: (got["seen"].get(k), v) for k, v in want["seen"].items() if got["seen"].get(k) != v}
    assert seen == {}, "key: (type seen by the node with ours, with InMemorySaver)"
    assert got == want
    assert norm(got) == norm(want)


async def test_tuples_keep_their_type(saver: Any, api: str) -> None:
    """A deliberate improvement: LangGraph's msgpack savers turn tuples into lists."""
    got = await sc.tuple_state(saver, api)
    want = await sc.tuple_state(InMemorySaver(), api)
    assert got == {"pair": (1, "two", 3.0), "nested": [("a", 1), ("b", (2, 3))]}
    assert want == {"pair": [1, "two", 3.0], "nested": [["a", 1], ["b", [2, 3]]]}


async def test_replay_through_a_stateful_subgraph(saver: Any, api: str) -> None:
    got, want = await run_both(sc.scenario_subgraph_replay, saver, api)
    for rec in (got, want):
        assert rec.raw["invoke.2"]["value"] == (2 + 1 + 2 + 3) * 10
        assert len(rec.raw["history.after"]) > len(rec.raw["history"])
        # replaying re-ran the subgraph without re-running the parent's first node
        assert rec.raw["calls.after_replay"]["child.double"] == 5
