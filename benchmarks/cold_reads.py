"""Cold reads, one process: get latest of threads no read touched lately, on sync SQLite,
ours with the message builders (`codec/messages.py`) and without them (every message
validated by pydantic), and the official SqliteSaver, in passes that alternate.

    python -m benchmarks.cold_reads                 # 400 threads x 8 passes, about a minute
    python -m benchmarks.cold_reads --threads 1000 --passes 12

Each contender gets a fresh SQLite file holding `--threads` copies of the recorded agent's
10-turn conversation (about 50 checkpoints, 40 messages in the latest). A pass reads the
latest checkpoint of every thread once, in a shuffled order; the order of the contenders
rotates from pass to pass. Prints each pass's median (ms) and the median of the passes.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import workload


def _without_builders() -> Callable[[bool], None]:
    """A switch between message decoding with and without the builders."""
    from langgraph_store_dual.codec.decode import MESSAGES

    builders = MESSAGES.builders

    def use(on: bool) -> None:
        MESSAGES.builders = builders if on else {}

    return use


def _fill(saver: Any, threads: int) -> list[str]:
    steps = workload.record(workload.THREAD_TURNS, next_version=saver.get_next_version)
    names = [workload.thread_id(n) for n in range(threads)]
    for number, thread in enumerate(names):
        for _ in workload.replay(saver, steps, thread, number):
            pass
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=400)
    parser.add_argument("--passes", type=int, default=8)
    args = parser.parse_args(argv)

    from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSaver

    from langgraph_store_dual import SqliteSaver

    switch = _without_builders()
    with tempfile.TemporaryDirectory() as tmp:
        official = OfficialSaver(sqlite3.connect(Path(tmp, "official.db"), check_same_thread=False))
        official.setup()
        with SqliteSaver.from_conn_string(str(Path(tmp, "ours.db"))) as ours:
            threads = {"ours": _fill(ours, args.threads), "official": _fill(official, args.threads)}
            contenders: list[tuple[str, Any, bool]] = [
                ("ours", ours, True),
                ("ours, no builders", ours, False),
                ("official", official, True),
            ]
            medians: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
            for p in range(args.passes):
                for name, saver, builders in contenders[p % 3 :] + contenders[: p % 3]:
                    switch(builders)
                    order = threads["ours" if saver is ours else "official"][:]
                    random.Random(p).shuffle(order)
                    took = []
                    for thread in order:
                        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
                        start = time.perf_counter()
                        saver.get_tuple(config)
                        took.append(time.perf_counter() - start)
                    medians[name].append(statistics.median(took) * 1e3)
            switch(True)
        official.conn.close()
    for name, values in medians.items():
        passes = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:>18}: median {statistics.median(values):.3f} ms  (passes: {passes})")


if __name__ == "__main__":
    main()
