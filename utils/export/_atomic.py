"""Exports appear whole or not at all: built in a hidden folder beside --out (utils.files.staged), renamed
at the end, and never over a folder the user did not ask to replace.

A failure, Ctrl-C or SIGTERM removes the folder being built; a SIGKILL leaves it behind, hidden and named
after the dead process, and the next export beside it removes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.errors import UserError
from utils.files import staged


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse a non-empty --out (or a file there) unless --force: an export never overwrites by accident."""
    if out.is_file():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: folder is not empty; pass --force to replace it")


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Stop before writing when the disk holding `folder` cannot take the export (plus 5% for metadata)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes * 1.05:
        raise UserError(
            f"--out {folder}: not enough disk space ({_gib(free)} free, the export needs about {_gib(needed_bytes)})"
        )


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


@contextmanager
def staged_folder(out: Path, force: bool) -> Iterator[Path]:
    """Yield an empty hidden folder beside `out`; when the block ends without an error it becomes `out`."""
    check_out_folder(out, force)
    with staged(out) as staging:
        staging.mkdir()
        yield staging
