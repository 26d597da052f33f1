"""Exports appear whole or not at all: built in a hidden folder beside --out (utils.files.staged), renamed
at the end, and never over a folder the user did not ask to replace.

A failure, Ctrl-C or SIGTERM removes the folder being built; a SIGKILL leaves it behind, hidden and named
after the dead process, and the next export beside it removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.errors import UserError
from utils.files import check_writable, staged


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse a non-empty --out (or a file there) unless --force: an export never overwrites by accident; and
    one that cannot be written (its folder beside it is where the export is built)."""
    if out.is_file():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: folder is not empty; pass --force to replace it")
    check_writable(out.parent if out.exists() else out, "--out")  # the export is built beside out, renamed in


@contextmanager
def staged_folder(out: Path, force: bool) -> Iterator[Path]:
    """Yield an empty hidden folder beside `out`; when the block ends without an error it becomes `out`."""
    check_out_folder(out, force)
    with staged(out) as staging:
        staging.mkdir()
        yield staging
