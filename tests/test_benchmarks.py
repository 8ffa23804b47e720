"""The benchmark harness runs end to end (`python -m benchmarks run --quick`).

This checks that the harness works and reports, not how fast anything is: the verdict it
prints is about latencies measured on whatever machine runs the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


OPS = ("get_latest", "get_by_id", "list_10", "history_thread", "put", "put_writes", "graph_turn")
LONG_OPS = ("long_get_latest", "long_history", "long_state_history")
IMPLS = ("ours", "official")
SLOTS = ("ours-sync", "ours-async", "official-sync", "official-async")


def test_quick_run(tmp_path: Path, pg_server_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LGSD_BENCH_PG_URL"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--quick",
            "--out",
            str(tmp_path),
            "--pg-url",
            pg_server_url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, output
    assert "retrieval p99 < 50 ms: PASS" in proc.stdout, output

    for name in ("report.md", "results.json", "latency.png"):
        assert (tmp_path / name).is_file(), f"{name} missing\n{output}"
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"]["passed"] is True
    assert results["config"]["contenders"] == list(IMPLS)
    machine = results["machine"]
    for key in ("cpu_model", "cores", "ram_gib", "python", "sqlite", "postgresql"):
        assert machine.get(key), key
    assert set(results["scales"]) == {"2000"}
    for engine in ("sqlite", "postgres"):
        data = results["scales"]["2000"][engine]
        for impl in IMPLS:
            store = data["stores"][impl]
            assert store["checkpoints"] >= 2000
            assert store["bytes_per_checkpoint"] > 0
        for op in OPS:
            for slot in SLOTS:
                stats = data["ops"][op][slot]
                assert stats["n"] > 0 and stats["samples_ms"], (engine, op, slot)
                assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
        long = results["long_chat"][engine]
        for op in LONG_OPS:
            for slot in SLOTS:
                assert long["ops"][op][slot]["n"] > 0, (engine, op, slot)

    report = (tmp_path / "report.md").read_text()
    assert "| operation | flavour | ours p50" in report
    assert "ratio p99" in report and "Bytes per checkpoint" in report
    assert "retrieval p99 < 50 ms: PASS" in report
