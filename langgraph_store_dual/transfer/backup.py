"""`backup` and `restore`: SQLite's online backup (the engine's own module does the
copy); PostgreSQL is backed up with `pg_dump` (README, "Backups")."""

from __future__ import annotations

import os

from .report import ProgressCallback, TransferReport


def backup(
    url: str, path: str | os.PathLike[str], *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Copy the SQLite database `url` to the new file `path` while it is in use, and
    check the copy. PostgreSQL: ConfigError pointing at the pg_dump recipe."""
    from ..sqlite.backup import backup as sqlite_backup

    return sqlite_backup(url, path, progress=progress)


def restore(
    path: str | os.PathLike[str], url: str, *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Copy the backup file `path` (checked first) into the SQLite database `url`, a new
    file or one without threads or checkpoints. PostgreSQL: ConfigError (pg_restore)."""
    from ..sqlite.backup import restore as sqlite_restore

    return sqlite_restore(path, url, progress=progress)
