"""Exports appear whole or not at all: built in a hidden folder beside --out, renamed at the end.

A failure, Ctrl-C or SIGTERM removes the folder being built; a SIGKILL leaves it behind, hidden and named
after the dead process, and the next export beside it removes it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.errors import UserError

_PARTIAL = ".partial-"


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
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(out)
    staging = out.with_name(f".{out.name}{_PARTIAL}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, out: Path) -> None:
    """Rename `staging` to `out`; a replaced (--force) folder is moved aside first and removed after."""
    old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    if out.exists():
        out.replace(old)
    staging.replace(out)
    shutil.rmtree(old, ignore_errors=True)


def _remove_orphans(out: Path) -> None:
    """Folders left by exports that were SIGKILLed (their process is gone)."""
    for leftover in out.parent.glob(f".{out.name}{_PARTIAL}*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
