"""`python -m benchmarks run|clean`: the benchmark harness.

    python -m benchmarks run --quick
    python -m benchmarks run --scales 10000,100000,1000000 --engines sqlite,postgres
    python -m benchmarks clean            # drop this output directory's databases

See `benchmarks/README.md` for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _scales(text: str) -> list[int]:
    try:
        values = sorted({int(float(x)) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        message = f"scales must be numbers separated by commas: {text!r}"
        raise argparse.ArgumentTypeError(message) from exc
    if not values or min(values) < 100:
        raise argparse.ArgumentTypeError("each scale must be at least 100 checkpoints")
    return values


def _engines(text: str) -> list[str]:
    from .contenders import ENGINES

    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in ENGINES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"engines are {', '.join(ENGINES)}; got {text!r}")
    return list(dict.fromkeys(names))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="preload (or reuse) databases, measure, report")
    run.add_argument(
        "--quick",
        action="store_true",
        help="one small scale (2,000 checkpoints), few samples: under 2 minutes",
    )
    run.add_argument(
        "--engines",
        type=_engines,
        default=None,
        help="comma-separated: sqlite,postgres (default both)",
    )
    run.add_argument(
        "--scales",
        type=_scales,
        default=None,
        help="database sizes in checkpoints (default 10000,100000,1000000; quick: 2000)",
    )
    run.add_argument(
        "--pg-url",
        default=None,
        help="admin URL of the PostgreSQL server under which the benchmark creates "
        "its databases (default: $LGSD_BENCH_PG_URL, else "
        "postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory: report.md, results.json, latency.png, cache/ "
        "(default benchmarks/results/)",
    )
    run.add_argument(
        "--official",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure the official savers side by side (default: when importable)",
    )
    run.add_argument(
        "--rounds", type=int, default=None, help="sample rounds per scale (default 1000; quick 40)"
    )
    run.add_argument(
        "--heavy-every",
        type=int,
        default=None,
        help="history walks and graph turns every n-th round (default 5; quick 4)",
    )
    run.add_argument(
        "--long-chat-turns",
        type=int,
        default=None,
        help="turns of the long-chat thread (default 300; quick 20)",
    )
    run.add_argument(
        "--long-chat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="preload and measure the long-chat thread (default yes)",
    )
    run.add_argument(
        "--long-samples",
        type=int,
        default=None,
        help="long-chat history walks per contender (default 3; quick 2)",
    )
    run.add_argument(
        "--jobs", type=int, default=None, help="preloading worker processes (default cores + 1)"
    )
    run.add_argument(
        "--keep-databases",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the PostgreSQL databases for the next run (default: yes, except with --quick)",
    )
    run.add_argument("--seed", type=int, default=1)
    clean = sub.add_parser("clean", help="drop the PostgreSQL databases and cached files of --out")
    clean.add_argument("--out", type=Path, default=DEFAULT_OUT)
    clean.add_argument("--pg-url", default=None)
    return p


def _pg_admin_url(arg: str | None) -> str:
    from .contenders import DEFAULT_PG_URL, PG_URL_ENV

    return arg or os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "clean":
        return clean(args)
    try:
        return run(args)
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


def clean(args: argparse.Namespace) -> int:
    from . import contenders

    out = args.out
    url = _pg_admin_url(args.pg_url)
    try:
        for name in contenders.list_databases(url, contenders.out_tag(out)):
            contenders.drop_database(url, name)
            _log(f"dropped database {name}")
    except Exception as exc:  # the server may be gone; the files can still go
        _log(f"PostgreSQL: {type(exc).__name__}: {exc}")
    cache = out / "cache"
    if cache.exists():
        for path in cache.iterdir():
            path.unlink()
        cache.rmdir()
        _log(f"removed {cache}")
    return 0


def run(args: argparse.Namespace) -> int:
    from . import contenders, machine, measure, preload, report, workload
    from .contenders import make_store

    started = time.time()
    quick = args.quick
    engines = args.engines or list(contenders.ENGINES)
    scales = args.scales or ([2000] if quick else [10_000, 100_000, 1_000_000])
    rounds = args.rounds or (40 if quick else 1000)
    heavy_every = args.heavy_every or (4 if quick else 5)
    long_turns = args.long_chat_turns or (20 if quick else workload.LONG_CHAT_TURNS)
    plan = measure.Plan(
        rounds=rounds,
        heavy_every=heavy_every,
        warmup=5 if quick else 20,
        put_threads=5 if quick else 20,
        long_samples=args.long_samples or (2 if quick else 3),
        seed=args.seed,
    )
    jobs = args.jobs or (os.cpu_count() or 1) + 1
    keep = args.keep_databases if args.keep_databases is not None else not quick
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    admin_url = _pg_admin_url(args.pg_url) if "postgres" in engines else None

    # Which contenders.
    pg_version = None
    if admin_url:
        try:
            pg_version = contenders.server_version(admin_url)
        except Exception as exc:
            _log(
                f"error: cannot reach PostgreSQL at {contenders.redact(admin_url)}: {exc}\n"
                "pass --pg-url (or set LGSD_BENCH_PG_URL), or --engines sqlite"
            )
            return 2
    missing = {e: contenders.official_missing(e) for e in engines}
    missing = {e: why for e, why in missing.items() if why}
    if args.official and missing:
        _log(f"error: --official but the official savers cannot be imported: {missing}")
        return 2
    with_official = args.official is not False and not missing
    impls = ["ours", "official"] if with_official else ["ours"]
    official_missing = None
    if args.official is None and missing:
        official_missing = "; ".join(f"{e}: {why}" for e, why in missing.items())
        _log(f"official savers not importable, measuring ours only ({official_missing})")

    info = machine.info(pg_version)
    _log(
        f"benchmark: engines {','.join(engines)}, scales {','.join(f'{s:,}' for s in scales)}, "
        f"contenders {','.join(impls)}; out {out}"
    )

    # Record the workload once per saver family (their channel versions differ).
    t0 = time.perf_counter()
    steps: dict[str, list[workload.Step]] = {}
    long_steps: dict[str, list[workload.Step]] = {}
    for impl in impls:
        nv = contenders.next_version(impl, engines[0])
        steps[impl] = workload.record(workload.THREAD_TURNS, next_version=nv)
        long_steps[impl] = workload.record(long_turns, next_version=nv)
    per_thread = len(steps[impls[0]])
    long_count = len(long_steps[impls[0]])
    _log(
        f"recorded the agent: {per_thread} checkpoints per {workload.THREAD_TURNS}-turn thread, "
        f"{long_count} in the {long_turns}-turn long chat ({time.perf_counter() - t0:.1f} s)"
    )
    recording = {
        "thread_turns": workload.THREAD_TURNS,
        "long_chat_turns": long_turns,
        "answer_chars": workload.ANSWER_CHARS,
    }
    steps_by_key = {}
    for impl in impls:
        for engine in engines:
            steps_by_key[f"{impl}-{engine}-threads"] = steps[impl]
            steps_by_key[f"{impl}-{engine}-longchat"] = long_steps[impl]

    # Preload (or find cached) every store.
    targets = []
    threads_at = {scale: math.ceil(scale / per_thread) for scale in scales}
    for scale in scales:
        for engine in engines:
            for impl in impls:
                store = make_store(engine, impl, str(scale), out, admin_url)
                targets.append(preload.Target(store, "threads", threads_at[scale], per_thread))
    for engine in engines if args.long_chat else ():
        for impl in impls:
            store = make_store(engine, impl, f"longchat{long_turns}", out, admin_url)
            targets.append(preload.Target(store, "longchat", 1, long_count))
    t0 = time.perf_counter()
    loaded = preload.preload(out, targets, steps_by_key, recording, jobs, log=_log)
    preload_wall = time.perf_counter() - t0
    _log(f"databases ready in {preload_wall:.0f} s")

    def store_entry(store: contenders.Store) -> dict[str, Any]:
        meta = dict(loaded[store.key])
        meta.pop("fingerprint", None)
        meta["bytes_per_checkpoint"] = meta["bytes"] / max(1, meta["checkpoints"])
        return meta

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": info,
        "config": {
            "quick": quick,
            "engines": engines,
            "scales": scales,
            "contenders": impls,
            "rounds": rounds,
            "heavy_every": heavy_every,
            "heavy_samples": plan.heavy_samples,
            "warmup_rounds": plan.warmup,
            "put_threads": plan.put_threads,
            "graph_threads": plan.graph_threads,
            "long_samples": plan.long_samples,
            "jobs": jobs,
            "seed": args.seed,
            "pg_admin_url": contenders.redact(admin_url or ""),
            "out": str(out),
        },
        "workload": {
            **recording,
            "steps_per_thread": per_thread,
            "long_chat_steps": long_count,
            "writes_per_thread": sum(len(s.writes) for s in steps[impls[0]]),
            "threads": {str(s): threads_at[s] for s in scales},
        },
        "official_missing": official_missing,
        "preload": {
            k: {kk: v for kk, v in m.items() if kk != "fingerprint"} for k, m in loaded.items()
        },
        "preload_wall_seconds": preload_wall,
        "scales": {},
        "long_chat": {},
    }

    # Measure, scale by scale, all engines and contenders interleaved.
    for scale in scales:
        runs = [
            measure.EngineRun(
                engine=engine,
                stores={
                    impl: make_store(engine, impl, str(scale), out, admin_url) for impl in impls
                },
                steps=steps,
                threads=threads_at[scale],
                steps_per_thread=per_thread,
            )
            for engine in engines
        ]
        t0 = time.perf_counter()
        samples = measure.run_async(measure.sample_scale(runs, impls, plan, f"{scale:,}", log=_log))
        _log(f"{scale:,} checkpoints measured in {time.perf_counter() - t0:.0f} s")
        results["scales"][str(scale)] = {
            run.engine: {
                "stores": {impl: store_entry(run.stores[impl]) for impl in impls},
                "ops": _summaries(samples[run.engine], report),
            }
            for run in runs
        }

    long_runs = [
        measure.LongRun(
            engine=engine,
            stores={
                impl: make_store(engine, impl, f"longchat{long_turns}", out, admin_url)
                for impl in impls
            },
            thread=workload.thread_id(0, "longchat"),
            steps=long_count,
        )
        for engine in engines
        if args.long_chat
    ]
    t0 = time.perf_counter()
    long_samples = {}
    if long_runs:
        long_samples = measure.run_async(measure.sample_long_chat(long_runs, impls, plan, log=_log))
        _log(f"long chat measured in {time.perf_counter() - t0:.0f} s")
    results["long_chat"] = {
        run.engine: {
            "stores": {impl: store_entry(run.stores[impl]) for impl in impls},
            "ops": _summaries(long_samples[run.engine], report),
        }
        for run in long_runs
    }

    passed, line, failures = report.verdict(results)
    results["verdict"] = {
        "passed": passed,
        "line": line,
        "failures": failures,
        "limit_ms": report.RETRIEVAL_P99_LIMIT_MS,
    }
    results["machine"]["loadavg_end"] = machine.loadavg()
    results["duration_s"] = time.time() - started

    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(report.markdown(results))
    report.chart(results, out / "latency.png")
    _log(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'latency.png'}")

    if not keep and admin_url:
        for target in targets:
            if target.store.engine == "postgres":
                contenders.drop(target.store)
                preload.meta_path(out, target.store).unlink(missing_ok=True)
        _log("dropped the PostgreSQL databases (--no-keep-databases)")

    print(line, flush=True)
    return 0 if passed else 1


def _summaries(samples: dict[str, dict[str, list[float]]], report: Any) -> dict[str, Any]:
    return {
        op: {
            slot: {**report.summarize(values), "samples_ms": [round(v, 4) for v in values]}
            for slot, values in by_slot.items()
        }
        for op, by_slot in samples.items()
    }
