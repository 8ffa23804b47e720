"""JSON Lines export and import: round trips between engines, selection, idempotence,
and the clear errors (with line numbers) that malformed or tampered files get."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from transfer_data import ODD_VALUES, assert_same, fill, stored

from langgraph_store_dual import (
    ConfigError,
    DecodeError,
    NotFoundError,
    SchemaVersionError,
    from_url,
)
from langgraph_store_dual.errors import UnsafeTypeError
from langgraph_store_dual.transfer import sql
from langgraph_store_dual.transfer.jsonl import export_threads, import_threads
from langgraph_store_dual.transfer.jsonl_format import FORMAT, VERSION, Write, write_calls

ENGINES = ["sqlite", "postgres"]


@pytest.fixture
def urls(tmp_path: Path, request: pytest.FixtureRequest):
    """A database URL per engine; the PostgreSQL ones are schemas of the test database."""
    made = iter(range(100))

    def make(engine: str) -> str:
        n = next(made)
        if engine == "sqlite":
            return f"sqlite:///{tmp_path}/db{n}.db"
        base = request.getfixturevalue("pg_clean_url")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA s{n}")
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options=-csearch_path%3Ds{n}"

    return make


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory):
    url = f"sqlite:///{tmp_path_factory.mktemp('source')}/source.db"
    import asyncio

    asyncio.run(fill(url))
    return url, stored(url)


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def write_lines(path: Path, items: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


@pytest.mark.parametrize("target", ENGINES)
def test_round_trip_from_sqlite(sqlite_source, urls, target: str, tmp_path: Path) -> None:
    source, want = sqlite_source
    out = tmp_path / "all.jsonl"
    exported = export_threads(source, out)
    assert exported.copied["threads"] == len(want["threads"])
    assert exported.copied["checkpoints"] == len(want["checkpoints"])
    url = urls(target)
    report = import_threads(url, out)
    assert report.ok, report
    assert report.copied == exported.copied
    got = stored(url)
    assert_same(got, want)
    # the odd values came back as what they were
    (typed,) = [
        t for k, t in got["checkpoints"].items() if k[0] == "typed" and t.metadata["step"] == 4
    ]
    assert typed.checkpoint["channel_values"]["log"][-1] == ODD_VALUES
    assert type(typed.checkpoint["channel_values"]["log"][-1]["tuple"]) is tuple
    # a second import stores nothing again
    again = import_threads(url, out)
    assert again.copied == {"threads": 0, "checkpoints": 0, "writes": 0}
    assert again.skipped == exported.copied
    assert_same(stored(url), want)


async def test_round_trip_from_postgres(urls, tmp_path: Path) -> None:
    source = urls("postgres")
    await fill(source)
    want = stored(source)
    out = tmp_path / "pg.jsonl"
    export_threads(source, out)
    assert lines(out)[0]["engine"] == "postgresql"
    target = urls("sqlite")
    assert import_threads(target, out).ok
    assert_same(stored(target), want)


def test_format(sqlite_source, tmp_path: Path) -> None:
    source, _ = sqlite_source
    out = tmp_path / "one.jsonl"
    export_threads(source, out, thread_ids=["waiting"])
    header, thread, *checkpoints, end = lines(out)
    assert header["kind"] == "header" and header["format"] == FORMAT and header["version"] == 2
    assert header["engine"] == "sqlite" and header["schema_version"] >= 5
    assert header["exported_at"].endswith("+00:00")
    assert thread["kind"] == "thread"
    assert (thread["user_id"], thread["title"], thread["status"], thread["run_state"]) == (
        "ana",
        "Waiting for Ana",
        "archived",
        "interrupted",
    )
    assert thread["metadata"] == {"team": "ops"}
    assert (thread["ttl_seconds"], thread["ttl_strategy"]) == (30 * 86400, "keep_latest")
    assert {c["kind"] for c in checkpoints} == {"checkpoint"}
    assert end == {
        "kind": "end",
        "threads": 1,
        "checkpoints": len(checkpoints),
        "writes": end["writes"],
    }
    latest = checkpoints[0]
    assert latest["checkpoint"]["channel_values"]["log"] == ["x"]
    interrupt = [w for w in latest["writes"] if w["channel"] == "__interrupt__"]
    assert [w["idx"] for w in interrupt] == [-3] and interrupt[0]["task_path"]
    parents = {c["parent_checkpoint_id"] for c in checkpoints}
    assert None in parents and {c["checkpoint_id"] for c in checkpoints} >= parents - {None}


def test_selection(sqlite_source, tmp_path: Path) -> None:
    source, _ = sqlite_source
    out = tmp_path / "sel.jsonl"
    report = export_threads(source, out, user_id="bob")
    assert [x["thread_id"] for x in lines(out) if x["kind"] == "thread"] == ["typed"]
    assert report.copied["threads"] == 1
    buffer = io.StringIO()
    export_threads(source, buffer, thread_ids=["fork", "chat-b"])
    kinds = [orjson.loads(x) for x in buffer.getvalue().splitlines()]
    assert [x["thread_id"] for x in kinds if x["kind"] == "thread"] == ["fork", "chat-b"]
    with pytest.raises(NotFoundError, match=r"'nobody'"):
        export_threads(source, tmp_path / "x.jsonl", thread_ids=["fork", "nobody"])
    with pytest.raises(ConfigError, match=r"not both"):
        export_threads(source, tmp_path / "x.jsonl", thread_ids=["fork"], user_id="bob")
    assert not (tmp_path / "x.jsonl").exists()
    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigError, match=r"missing.db does not exist"):
        export_threads(f"sqlite:///{missing}", tmp_path / "x.jsonl")
    assert not missing.exists()


def test_progress(sqlite_source, tmp_path: Path) -> None:
    source, want = sqlite_source
    seen = []
    export_threads(source, tmp_path / "p.jsonl", progress=seen.append)
    threads = [p for p in seen if p.phase == "threads"]
    assert threads[-1].done == threads[-1].total == len(want["threads"])


@pytest.fixture
def exported(sqlite_source, tmp_path: Path) -> list[dict]:
    out = tmp_path / "fork.jsonl"
    export_threads(sqlite_source[0], out, thread_ids=["waiting"])
    return lines(out)


def _checkpoint_count(url: str) -> int:
    with from_url(url, auto_setup=False) as saver:
        return sql.count(saver, "checkpoints")


def test_malformed_line(exported, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    data = b"".join(orjson.dumps(x) + b"\n" for x in exported[:3]) + b'{"kind": "checkpoint", \n'
    path.write_bytes(data)
    url = f"sqlite:///{tmp_path}/t.db"
    with pytest.raises(DecodeError, match=r"bad.jsonl line 4: not JSON"):
        import_threads(url, path)
    assert _checkpoint_count(url) == 1  # line 3, before the bad one


@pytest.mark.parametrize(
    "tamper, error, message",
    [
        (
            lambda c: c["checkpoint"]["channel_values"].update(
                log={"$t": "enum", "c": "evil_module_never_imported:E", "v": 1}
            ),
            UnsafeTypeError,
            "evil_module_never_imported",
        ),
        (lambda c: c.pop("metadata"), DecodeError, "no 'metadata'"),
        (lambda c: c.update(checkpoint_id=7), DecodeError, "'checkpoint_id' must be str"),
        (
            lambda c: c["writes"].append({**c["writes"][0], "channel": "__error__", "idx": 5}),
            DecodeError,
            "__error__ has index 5",
        ),
        (lambda c: c["writes"][0].update(value={"$t": "no-such-tag"}), DecodeError, ""),
    ],
)
def test_tampered_checkpoint(exported, tmp_path: Path, tamper, error, message) -> None:
    """The tampered checkpoint (line 3: the latest, with writes) stores nothing, its
    writes included; the error names the line."""
    items = [orjson.loads(orjson.dumps(x)) for x in exported]
    assert items[2]["writes"]
    tamper(items[2])
    url = f"sqlite:///{tmp_path}/t.db"
    with pytest.raises(error, match=rf"line 3: .*{message}"):
        import_threads(url, write_lines(tmp_path / "t.jsonl", items))
    with from_url(url) as saver:
        assert sql.count(saver, "checkpoints") == 0
        assert sql.count(saver, "writes") == 0
    # the file as exported then imports whole
    report = import_threads(url, write_lines(tmp_path / "ok.jsonl", exported))
    assert report.ok and report.copied["checkpoints"] == len(exported) - 3


def test_file_errors(exported, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    last = len(exported) - 1
    with pytest.raises(DecodeError, match=f"line {last}: the file ends without its end line"):
        import_threads(url, write_lines(tmp_path / "cut.jsonl", exported[:-1]))
    end = {**exported[-1], "checkpoints": 1}
    with pytest.raises(DecodeError, match=r"line \d+: the end line does not match"):
        import_threads(url, write_lines(tmp_path / "end.jsonl", [*exported[:-1], end]))
    newer = {**exported[0], "version": VERSION + 1}
    with pytest.raises(SchemaVersionError, match=rf"line 1: .*format version {VERSION + 1}"):
        import_threads(url, write_lines(tmp_path / "new.jsonl", [newer, *exported[1:]]))
    fresh = tmp_path / "fresh.db"
    with pytest.raises(DecodeError, match=r"line 1: not a langgraph-store-dual"):
        import_threads(f"sqlite:///{fresh}", write_lines(tmp_path / "nohead.jsonl", exported[1:]))
    assert not fresh.exists()  # the header is checked before the target is opened
    orphan = {**exported[2], "thread_id": "elsewhere"}
    with pytest.raises(DecodeError, match=r"line 3: a checkpoint of thread 'elsewhere'"):
        import_threads(url, write_lines(tmp_path / "orphan.jsonl", [*exported[:2], orphan]))
    gone = tmp_path / "gone.db"
    with pytest.raises(ConfigError, match=r"gone.jsonl does not exist"):
        import_threads(f"sqlite:///{gone}", tmp_path / "gone.jsonl")
    assert not gone.exists()


def test_a_thread_keeps_its_ttl_and_a_version_1_file_still_imports(
    exported, tmp_path: Path
) -> None:
    """The ttl and its strategy travel with the thread (counting from the import, like
    its activity); a thread without one gets none. A file of version 1 (no ttl in its
    thread lines) imports as before; a ttl the saver would refuse names its line."""
    url = f"sqlite:///{tmp_path}/t.db"
    assert import_threads(url, write_lines(tmp_path / "v2.jsonl", exported)).ok
    none = [{**x, "thread_id": "plain"} if x["kind"] != "header" else x for x in exported]
    none[1] = {**none[1], "ttl_seconds": None, "ttl_strategy": None}
    assert import_threads(url, write_lines(tmp_path / "n.jsonl", none)).ok
    old = [
        {**x, "thread_id": "old"} if x["kind"] != "header" else {**x, "version": 1}
        for x in exported
    ]
    old[1] = {k: v for k, v in old[1].items() if not k.startswith("ttl_")}
    assert import_threads(url, write_lines(tmp_path / "v1.jsonl", old)).ok
    bad = [*exported[:1], {**exported[1], "thread_id": "bad", "ttl_seconds": -5}]
    with pytest.raises(ConfigError, match=r"line 2: ttl must be .*got -5"):
        import_threads(url, write_lines(tmp_path / "bad.jsonl", bad))
    with from_url(url) as saver:
        waiting, plain, old_one = (saver.threads.get(t) for t in ("waiting", "plain", "old"))
        assert saver.threads.get("bad") is None
    assert (waiting.ttl, waiting.ttl_strategy) == (timedelta(days=30), "keep_latest")
    assert plain.ttl is None and plain.expires_at is None
    assert old_one.ttl is None and old_one.title == waiting.title


def test_write_calls_reproduce_indexes() -> None:
    def w(idx: int, channel: str) -> Write:
        return Write("t", "~path", idx, channel, channel)

    # a special write between two regular ones left a gap at index 1: it fills it again
    calls = write_calls([w(-3, "__interrupt__"), w(0, "a"), w(2, "b")])
    assert calls == [("t", "~path", [("a", "a"), ("__interrupt__", "__interrupt__"), ("b", "b")])]
    with pytest.raises(DecodeError, match=r"no write at index 1"):
        write_calls([w(0, "a"), w(2, "b")])
    with pytest.raises(DecodeError, match=r"index 0 twice"):
        write_calls([w(0, "a"), w(0, "b")])
