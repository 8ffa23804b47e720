"""Verifying an import from an official saver's database: counts, references, and a
sample of checkpoints read back through our saver equal to the source's."""

from __future__ import annotations

from typing import Any

from ..core.threads import held as thread_counts
from ..errors import ConfigError, DecodeError, NotFoundError
from .official_decode import Decoder
from .official_read import RawCheckpoint, TableSource, ThreadSize
from .report import Progress, ProgressCallback, TableCount, TransferReport


def verify(
    source: TableSource,
    saver: Any,
    decoder: Decoder,
    threads: list[ThreadSize],
    samples: int,
    report: TransferReport,
    progress: ProgressCallback | None,
) -> None:
    """Add the counts, the target's reference problems and the sample's differences to
    `report`."""
    held = {"threads": 0, "checkpoints": 0, "writes": 0}
    for i, size in enumerate(threads, 1):
        try:
            checkpoints, writes = saver.run_op(thread_counts(saver.dialect, size.thread_id))
        except (NotFoundError, ConfigError):  # not copied: a problem said why
            continue
        held["threads"] += 1
        held["checkpoints"] += checkpoints
        held["writes"] += writes
        report.problems += saver.check_references(size.thread_id)
        if progress is not None:
            progress(Progress("verify", i, len(threads)))
    wanted = {
        "threads": len(threads),
        "checkpoints": sum(t.checkpoints for t in threads),
        "writes": sum(t.writes for t in threads),
    }
    report.counts += [TableCount(kind, wanted[kind], held[kind]) for kind in wanted]
    for thread_id, offset in sample_positions(threads, samples):
        raw = source.batch(thread_id, None, 1, offset)[0]
        try:
            report.problems += compare(source, saver, decoder, thread_id, raw)
        except DecodeError as exc:  # names the checkpoint
            report.problems.append(str(exc))
        except ConfigError as exc:
            report.problems.append(f"checkpoint {raw.checkpoint_id} of thread {thread_id!r}: {exc}")
        report.samples_checked += 1


def sample_positions(threads: list[ThreadSize], n: int) -> list[tuple[str, int]]:
    """`n` checkpoints spread evenly over all, as (thread, position in the thread); the
    last checkpoint of the last thread among them."""
    total = sum(t.checkpoints for t in threads)
    if not total or not n:
        return []
    n = min(n, total)
    wanted = sorted({total - 1 - k * total // n for k in range(n)})
    out, start, it = [], 0, iter(threads)
    size = next(it)
    for g in wanted:
        while g >= start + size.checkpoints:
            start += size.checkpoints
            size = next(it)
        out.append((size.thread_id, g - start))
    return out


def compare(
    source: TableSource, saver: Any, decoder: Decoder, thread_id: str, raw: RawCheckpoint
) -> list[str]:
    """How the checkpoint our saver reads differs from the source's (empty: it does not)."""
    name = f"checkpoint {raw.checkpoint_id} of thread {thread_id!r}"
    at = {"thread_id": thread_id, "checkpoint_ns": raw.checkpoint_ns}
    got = saver.get_tuple({"configurable": {**at, "checkpoint_id": raw.checkpoint_id}})
    if got is None:
        return [f"{name} is missing from the target"]
    checkpoint = decoder.adopt_sends(
        decoder.checkpoint(thread_id, raw),
        lambda: source.sends(thread_id, raw.checkpoint_ns, raw.parent_id or ""),
    )
    parent = got.parent_config["configurable"]["checkpoint_id"] if got.parent_config else None
    ours, theirs = dict(got.checkpoint), checkpoint
    values = (ours.pop("channel_values", {}), theirs.pop("channel_values", {}))
    parts = {
        f"value of channel {ch!r}": (values[0].get(ch), values[1].get(ch))
        for ch in sorted(values[0].keys() | values[1].keys())
    }
    parts |= {f"{key!r}": (ours.get(key), theirs.get(key)) for key in ours.keys() | theirs.keys()}
    parts |= {
        "metadata": (got.metadata, raw.metadata),
        "parent": (parent, raw.parent_id),
        "pending writes": (list(got.pending_writes), decoder.pending(thread_id, raw)),
    }
    return [
        f"{name} reads back with a different {part} than the source's"
        for part, (a, b) in parts.items()
        if a != b
    ]
