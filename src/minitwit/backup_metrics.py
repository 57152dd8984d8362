"""Backup freshness as Prometheus metrics: a textfile for node_exporter's textfile collector.

``minitwit backup`` runs for a few seconds a day, too briefly to be scraped, and the alert that
matters ("no successful backup for 26 h") must keep working while the backup job is dead. So
after each successful dump it writes the time and size of that dump to a file, which the
node_exporter on the same node serves on every scrape: the last success stays visible, and
ages, whatever happened to the job since. A failed backup leaves the file alone.

The file is replaced atomically (written beside it, then renamed), so node_exporter never reads
half a file; it must be world-readable, since node_exporter runs as another user.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

LAST_SUCCESS = "minitwit_backup_last_success_timestamp_seconds"
LAST_SIZE = "minitwit_backup_last_size_bytes"
KEPT = "minitwit_backup_kept_dumps"


def render(finished_at: float, size_bytes: int, kept: int) -> str:
    """The textfile's content, in Prometheus' text exposition format."""
    return (
        f"# HELP {LAST_SUCCESS} Unix time at which the last successful `minitwit backup` finished.\n"
        f"# TYPE {LAST_SUCCESS} gauge\n"
        f"{LAST_SUCCESS} {finished_at:.3f}\n"
        f"# HELP {LAST_SIZE} Size in bytes of the dump written by the last successful backup.\n"
        f"# TYPE {LAST_SIZE} gauge\n"
        f"{LAST_SIZE} {size_bytes}\n"
        f"# HELP {KEPT} Dumps kept in the backup directory after the last successful backup.\n"
        f"# TYPE {KEPT} gauge\n"
        f"{KEPT} {kept}\n"
    )


def write(path: Path, dump: Path, kept: int) -> None:
    """Records ``dump`` (just written) as the last successful backup in the textfile ``path``."""
    stat = dump.stat()
    content = render(stat.st_mtime, stat.st_size, kept)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The collector reads only *.prom files: the temporary name must not end in .prom.
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, 0o644)  # node_exporter reads it as another user; it holds no secret
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
