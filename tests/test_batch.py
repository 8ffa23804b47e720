"""The importers' batch writer (`transfer/batch.py`) on both engines: many checkpoints per
transaction, complete; a value refused when queued and a checkpoint the database refuses
mid-batch; a kill inside a batch's transaction; and `import_official` with a refused
checkpoint in the middle of a batch."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_data import checkpoint_id, item, stored
from helpers import run_cfg as cfg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from official_data import Opaque, ask, linear, official

from langgraph_store_dual import ConfigError, from_url
from langgraph_store_dual.core.ops import Op, Stmt
from langgraph_store_dual.transfer.batch import BatchWriter, Item
from langgraph_store_dual.transfer.official import import_official

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "pg"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batch.db'}"
    return str(request.getfixturevalue("pg_clean_url"))


def complete(threads: int, steps: int) -> dict[tuple[str, str], tuple[int, int]]:
    """What `stored` finds when every checkpoint is there with its two writes."""
    return {
        (f"t{t}", checkpoint_id(t, s)): (2 * (s + 1), 2)
        for t in range(threads)
        for s in range(steps)
    }


def at(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


class Counting:
    """Counts the transactions a saver runs through `run_op`."""

    def __init__(self, saver: Any) -> None:
        self.calls = 0
        run = saver.run_op

        def counted(op: Op[Any], *, write: bool = False) -> Any:
            self.calls += 1
            return run(op, write=write)

        saver.run_op = counted


def test_batches_store_complete_checkpoints_in_few_transactions(url: str) -> None:
    with from_url(url) as saver:
        saver.setup()
        count = Counting(saver)
        told: list[Any] = []
        with BatchWriter(saver, max_items=5, stored=lambda items: told.append(items)) as w:
            for t in range(3):
                for s in range(4):
                    assert w.add(item(saver, t, s))
            assert len(w.pending) == 2 and w.holds("t2") and not w.holds("t0")
        assert count.calls == 3  # 5 + 5 + 2 checkpoints
        assert [[i.tag for i in items] for items in told] == [
            [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)],
            [(1, 1), (1, 2), (1, 3), (2, 0), (2, 1)],
            [(2, 2), (2, 3)],
        ]
        assert stored(saver) == complete(3, 4)
        latest = saver.get_tuple(at("t1"))
        assert latest is not None and latest.pending_writes is not None
        assert latest.checkpoint["channel_values"]["messages"][-1].content == "answer 3"
        assert {(tid, ch) for tid, ch, _ in latest.pending_writes} == {
            ("task-3", "messages"),
            ("task-3", "step"),
        }
        thread = saver.threads.get("t1")
        assert thread is not None and (thread.user_id, thread.title) == ("ana", "question 0 of t1")
        assert saver.check_references() == []

        count.calls = 0  # by bytes: each checkpoint alone; again, nothing changes
        with BatchWriter(saver, max_bytes=1) as w:
            for s in range(4):
                w.add(item(saver, 0, s))
        assert count.calls == 4
        assert stored(saver) == complete(3, 4)
        assert saver.threads.stats("t0").writes == 8


def test_a_value_refused_when_queued_raises_for_that_checkpoint_alone(url: str) -> None:
    with from_url(url, serde=JsonPlusSerializer(pickle_fallback=True)) as saver:
        with BatchWriter(saver) as w:
            w.add(item(saver, 0, 0))
            with pytest.raises(ConfigError, match=r"pickled a official_data\.Opaque"):
                w.add(item(saver, 0, 1, obj=Opaque(1)))  # a pickle, and no pickle_key
            assert [i.tag for i in w.pending] == [(0, 0)]
            w.add(item(saver, 1, 0))
        assert stored(saver) == {
            ("t0", checkpoint_id(0, 0)): (2, 2),
            ("t1", checkpoint_id(1, 0)): (2, 2),
        }


def refused() -> Op[None]:
    """A statement the database refuses (only when it runs: it is queued fine)."""
    yield Stmt("INSERT INTO no_such_table (x) VALUES (1)", (), fetch=False)


def test_a_checkpoint_the_database_refuses_mid_batch_is_named_and_the_others_stored(
    url: str,
) -> None:
    with from_url(url) as saver:
        failures: list[tuple[Any, str]] = []
        told: list[Any] = []
        w = BatchWriter(
            saver,
            stored=lambda items: told.extend(i.tag for i in items),
            failed=lambda it, exc: failures.append((it.tag, type(exc).__name__)),
        )
        for t in range(2):
            for s in range(4):
                one = item(saver, t, s)
                if (t, s) == (0, 2):
                    one = Item(one.group, (*one.make, refused), one.tag)
                w.add(one)
        count = Counting(saver)
        w.flush()
        # the batch, then each alone: t0 up to the refused one (not after), t1
        assert count.calls == 1 + 3 + 4
        assert failures == [((0, 2), failures[0][1])]
        assert "Undefined" in failures[0][1] or "Operational" in failures[0][1]
        assert told == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)]
        assert not w.add(item(saver, 0, 3))  # its thread's later checkpoints are dropped
        assert w.pending == []
        want = complete(2, 4)
        for s in (2, 3):
            del want[("t0", checkpoint_id(0, s))]
        assert stored(saver) == want
        assert saver.check_references() == []


def test_a_failure_handler_that_raises_stops_the_writer(url: str) -> None:
    with from_url(url) as saver:
        w = BatchWriter(saver)  # the default re-raises
        w.add(item(saver, 0, 0))
        one = item(saver, 0, 1)
        w.add(Item(one.group, (*one.make, refused), one.tag))
        w.add(item(saver, 1, 0))
        with pytest.raises(Exception, match="no_such_table"), w:
            pass
        assert set(stored(saver)) == {("t0", checkpoint_id(0, 0))}


DRIVER = """
import sys
from batch_data import item
from langgraph_store_dual import from_url
from langgraph_store_dual.core.ops import Stmt
from langgraph_store_dual.transfer.batch import BatchWriter, Item

def wait_inside():
    yield Stmt("SELECT 1")  # needs its rows: runs in the batch's transaction
    print("inside", flush=True)
    sys.stdin.readline()  # wait here to be killed

def tell(items):
    print("stored", len(items), flush=True)

url, block = sys.argv[1], sys.argv[2] == "block"
with from_url(url) as saver, BatchWriter(saver, max_items=5, stored=tell) as writer:
    for t in range(3):
        for s in range(4):
            one = item(saver, t, s)
            if block and (t, s) == (1, 3):  # in the second batch
                one = Item(one.group, (*one.make, wait_inside), one.tag)
            writer.add(one)
print("finished", flush=True)
"""


def drive(tmp_path: Path, url: str, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen(
        [sys.executable, str(script), url, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def lines_until(proc: subprocess.Popen[str], last: str) -> Iterator[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        yield line.strip()
        if line.strip() == last:
            return
    pytest.fail(f"the driver ended before {last!r}: {proc.wait()}")


def test_a_kill_inside_a_batch_leaves_the_batches_before_it_whole(url: str, tmp_path: Path) -> None:
    with from_url(url) as saver:
        saver.setup()
    proc = drive(tmp_path, url, "block")
    try:
        seen = list(lines_until(proc, "inside"))
    finally:
        proc.kill()  # SIGKILL inside the second batch's transaction: no cleanup runs
        proc.wait()
    assert seen == ["stored 5", "inside"]
    with from_url(url) as saver:
        first = {k: v for k, v in complete(2, 4).items() if k[1] <= checkpoint_id(1, 0)}
        assert stored(saver) == first  # the first batch, each checkpoint with its writes
        assert saver.check_references() == []
        assert saver.threads.get("t2") is None
        thread = saver.threads.get("t1")
        assert thread is not None and thread.title == "question 0 of t1"

    for _ in range(2):  # run again: complete, and again: the same
        proc = drive(tmp_path, url, "go")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.split("\n")[-2] == "finished", out
        with from_url(url) as saver:
            assert stored(saver) == complete(3, 4)
            assert saver.threads.stats("t1").writes == 8
            assert saver.check_references() == []


def test_import_official_reports_a_refused_checkpoint_in_the_middle_of_a_batch(
    tmp_path: Path, request: pytest.FixtureRequest, url: str
) -> None:
    source = f"sqlite:///{tmp_path / 'official.db'}"
    with official(source, serde=JsonPlusSerializer(pickle_fallback=True)) as saver:
        graph = linear(saver)
        for tid in ("a", "p", "z"):
            for turn in range(3):
                graph.invoke(ask(f"turn {turn} of {tid}"), cfg(tid))
        history = list(saver.list(cfg("p")))[::-1]  # oldest first
        middle = history[len(history) // 2]
        checkpoint = {**middle.checkpoint}
        checkpoint["channel_values"] = {**checkpoint["channel_values"], "obj": Opaque(3)}
        checkpoint["channel_versions"] = {**checkpoint["channel_versions"], "obj": 1}
        saver.put(middle.parent_config, checkpoint, middle.metadata, {"obj": 1})
        total = sum(len(list(saver.list(cfg(t)))) for t in ("a", "p", "z"))

    report = import_official(source, url, batch_size=500)
    cid = middle.config["configurable"]["checkpoint_id"]
    assert report.problems[0].startswith(f"checkpoint {cid} of thread 'p', ")
    assert "pickled value is refused" in report.problems[0]
    assert report.problems[0].endswith("(the thread's later checkpoints were not copied)")
    before = history.index(middle)
    assert report.copied["checkpoints"] == total - (len(history) - before)
    assert report.copied["threads"] == 3
    with from_url(url) as ours:
        kept = [t.config["configurable"]["checkpoint_id"] for t in ours.list(at("p"))]
        assert kept[::-1] == [h.config["configurable"]["checkpoint_id"] for h in history[:before]]
        for tid in ("a", "z"):
            assert len(list(ours.list(at(tid)))) == len(list(official_list(source, tid)))
        assert ours.check_references() == []


def official_list(source: str, thread_id: str) -> list[Any]:
    with official(source) as saver:
        return list(saver.list(cfg(thread_id)))
