"""What a transfer (migration, import, export) reports: progress while it runs, and the
counts and verification when it ends. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress step: `done` of `total` units (`total` None when unknown) of `phase`
    ("threads", "checkpoints", "writes", "verify", ...)."""

    phase: str
    done: int
    total: int | None


#: Called after each batch; a CLI draws a progress bar from it.
ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class TableCount:
    """Rows of one kind (threads, checkpoints, writes, values) in the source and target."""

    kind: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.target >= self.source


@dataclass(slots=True)
class TransferReport:
    """What a transfer copied and skipped (already there), and how it verified.

    `problems` lists every mismatch found by verification (counts, references, read-back
    samples); a transfer is `ok` when there is none.
    """

    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    counts: list[TableCount] = field(default_factory=list)
    samples_checked: int = 0
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(count.ok for count in self.counts)

    def add(self, kind: str, copied: int = 0, skipped: int = 0) -> None:
        """Count `copied` and `skipped` rows of `kind`."""
        self.copied[kind] = self.copied.get(kind, 0) + copied
        self.skipped[kind] = self.skipped.get(kind, 0) + skipped
