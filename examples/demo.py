"""Demo: a network-ops agent on the embedded SQLite default, then its history.

python examples/demo.py [--url sqlite:///demo.db]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent import build_agent

from langgraph_store_dual import from_url
from langgraph_store_dual.urls import sqlite_path

QUESTIONS = [
    "Is 10.0.0.0/16 reachable from the edge routers?",
    "And 10.1.0.0/16? The customer says it is missing.",
    "Summarise what you found for the ticket.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///demo.db", help="database URL")
    args = parser.parse_args()
    config = {"configurable": {"thread_id": "demo", "user_id": "ana@example.com"}}

    with from_url(args.url) as saver:
        saver.delete_thread("demo")  # start the demo afresh on every run
        graph = build_agent().compile(checkpointer=saver)
        for question in QUESTIONS:
            state = graph.invoke({"messages": [("user", question)]}, config)
            print(f"user> {question}\nagent> {state['messages'][-1].content[:90]}...\n")

        print("History of thread 'demo' (newest first, every step is a checkpoint):")
        for snap in graph.get_state_history(config):
            last = snap.values["messages"][-1] if snap.values.get("messages") else None
            what = f"{type(last).__name__}: {str(last.content)[:50]!r}" if last else "-"
            print(
                f"  step {snap.metadata['step']:>2} {snap.metadata['source']:<6} "
                f"next={list(snap.next)!s:<12} messages={len(snap.values.get('messages', [])):>2}"
                f"  last={what}"
            )

        # Time travel: ask a different second question, branching off the end of turn one.
        turn_one = next(s for s in graph.get_state_history(config) if s.metadata["step"] == 3)
        forked = graph.invoke(
            {"messages": [("user", "Check 10.9.0.0/16 instead.")]}, turn_one.config
        )
        print(
            f"\nForked at step 3: {len(forked['messages'])} messages on the new branch, "
            f"answer {forked['messages'][-1].content[:50]!r}..."
        )

    if args.url.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(args.url)) as db:
            (content,) = db.execute(
                "SELECT checkpoint ->> '$.channel_values.messages[#-1].content' "
                "FROM checkpoints_expanded "
                "WHERE thread_id = 'demo' AND checkpoint_ns = '' ORDER BY thread_ts DESC LIMIT 1"
            ).fetchone()
        print(f"\nThe state is plain JSON; SQL reads the last message: {content[:60]!r}...")


if __name__ == "__main__":
    main()
