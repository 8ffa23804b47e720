"""`fresh.gc_paused`: the collector is paused while decoding and left as it was found;
what a large pause allocated goes to the oldest generation; reads decode in a pause."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from langgraph_store_dual import SqliteSaver
from langgraph_store_dual.fresh import gc_paused

#: Allocations after which a young collection is due (a pause then promotes).
DUE = gc.get_threshold()[0]


class Node:
    """A tracked object that can be put in a cycle and watched with a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _generation(obj: object) -> int | None:
    return next((g for g in range(3) if any(o is obj for o in gc.get_objects(g))), None)


@pytest.fixture
def collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    yield
    (gc.enable if was_enabled else gc.disable)()


def test_paused_inside_and_restored_after(collector: None) -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_stays_disabled_if_it_was(collector: None) -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_resumes_after_an_error(collector: None) -> None:
    gc.enable()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_pauses_nest_across_threads(collector: None) -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(timeout=30)

    worker = threading.Thread(target=other)
    worker.start()
    assert inside.wait(timeout=30)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's pause has not ended
    release.set()
    worker.join()
    assert gc.isenabled()


def test_a_large_pause_moves_its_objects_to_the_oldest_generation(collector: None) -> None:
    gc.enable()
    with gc_paused():
        kept = [Node() for _ in range(DUE + 1000)]
    assert _generation(kept[-1]) == 2
    assert _generation(kept) == 2


def test_a_small_pause_leaves_generations_alone(collector: None) -> None:
    gc.enable()
    with gc_paused():
        kept = [Node() for _ in range(10)]
    assert _generation(kept[-1]) == 0


def test_a_pause_promotes_as_soon_as_a_young_collection_is_due(collector: None) -> None:
    gc.enable()
    with gc_paused():
        kept = [Node() for _ in range(DUE + 50)]
    assert _generation(kept[-1]) == 2


def test_objects_the_process_froze_stay_frozen(collector: None) -> None:
    gc.enable()
    frozen = Node()
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with gc_paused():
            kept = [Node() for _ in range(DUE + 1000)]
        assert gc.get_freeze_count() == count
        assert _generation(frozen) is None  # still in the permanent generation
        assert len(kept) > DUE
    finally:
        gc.unfreeze()


def test_promoted_cycles_are_still_collected(collector: None) -> None:
    gc.enable()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    with gc_paused():
        kept = [Node() for _ in range(DUE + 1000)]
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    gc.collect()
    assert gone() is None
    assert len(kept) > DUE


def test_reads_decode_with_the_collector_paused(tmp_path: Path, collector: None) -> None:
    """Reading a large state runs no collection, and leaves the state in the oldest
    generation: get_tuple and list decode in a pause."""
    gc.enable()
    cp = empty_checkpoint()
    cp["channel_values"] = {
        "messages": [HumanMessage(f"m{i} " * 20, id=str(i)) for i in range(3000)]
    }
    cp["channel_versions"] = {"messages": 1}
    conf = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    with SqliteSaver.from_conn_string(str(tmp_path / "t.db")) as saver:
        saver.put(conf, cp, {}, {"messages": 1})
        gc.collect()
        gc.callbacks.append(count)
        try:
            got = saver.get_tuple(conf)
            listed = next(iter(saver.list(conf)))
        finally:
            gc.callbacks.remove(count)
    assert passes == []
    for item in (got, listed):
        assert item is not None
        assert _generation(item.checkpoint["channel_values"]["messages"][-1]) == 2
