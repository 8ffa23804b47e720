"""Moving data in and out: migration between our databases, import from the official
savers' databases, JSON Lines export/import, backup and restore.

Each function opens its databases by URL (`from_url`) and returns a `TransferReport`.
"""

from .backup import backup, restore
from .jsonl import export_threads, import_threads
from .migrate import migrate
from .official import import_official
from .report import Progress, ProgressCallback, TableCount, TransferReport

__all__ = [
    "Progress",
    "ProgressCallback",
    "TableCount",
    "TransferReport",
    "backup",
    "export_threads",
    "import_official",
    "import_threads",
    "migrate",
    "restore",
]
