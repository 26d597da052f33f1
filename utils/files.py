"""Files that appear whole or not at all: written under a temporary name beside their place, then renamed.

One naming scheme for what is being written: `.NAME.partial-PID` (and `.NAME.old-PID` for a folder being
replaced), hidden, in the same folder (a rename within one filesystem is atomic). A failure, Ctrl-C or
SIGTERM removes the temporary; a SIGKILL leaves it behind, named after the dead process, and the next write
of the same NAME removes it. Readers pass over such names with `is_temp`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.errors import UserError

__all__ = ["check_free_space", "check_writable", "is_temp", "read_jsonl", "remove_orphans", "staged", "write_atomic"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<pid>\d+)$")


def _temp_path(path: Path, kind: str = "partial") -> Path:
    """Where `path` is built (kind "partial") or where the version it replaces waits (kind "old")."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def is_temp(path: Path) -> bool:
    """A name this module writes under before the rename: not (yet, or any longer) the real thing."""
    return _TEMP.match(path.name) is not None


@contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (nothing there yet: write a file or a folder to it); when the block
    ends without an error it replaces `path`, else it is removed.

    A folder swapped in by another process meanwhile wins: FileExistsError, ours removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    tmp = _temp_path(path)
    _remove(tmp)
    try:
        yield tmp
        _swap_in(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (str as UTF-8) to `path` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    with staged(path) as tmp, tmp.open("wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
    return path


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict]:
    """The complete records of a JSONL file that is appended to line by line ([] when there is none). A line
    that does not parse (torn by a kill mid-write) is skipped; `repair` also rewrites the file without it, so
    that appending again starts on a fresh line."""
    path = Path(path)
    if not path.is_file():
        return []
    records, torn = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
    if torn and repair:
        write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return records


def remove_orphans(path: Path) -> None:
    """Temporaries of `path` left by processes that are gone (SIGKILLed mid-write)."""
    if not path.parent.is_dir():
        return
    prefix = f".{path.name}."
    for leftover in path.parent.iterdir():
        match = _TEMP.match(leftover.name) if leftover.name.startswith(prefix) else None
        if match and match["name"] == path.name and not _alive(int(match["pid"])):
            _remove(leftover)


def _swap_in(tmp: Path, path: Path) -> None:
    """A file replaces a file in one rename; a folder (or a change of kind) moves the old one aside first."""
    if not (tmp.is_dir() or path.is_dir()):
        tmp.replace(path)
        return
    old = _temp_path(path, "old")
    _remove(old)
    if path.exists():
        path.replace(old)
    try:
        tmp.replace(path)
    except OSError as err:
        if old.exists() and not path.exists():
            old.replace(path)  # the previous version goes back where it was
        _remove(old)
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, "another process put it there meanwhile", str(path)) from None
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def check_writable(folder: str | Path, key: str = "--out") -> None:
    """`folder` can be created and written, checked before any heavy work: a path under a file, a read-only
    filesystem or a folder without permission is one line naming `key` (the option or recipe key that set it)."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{key}: {existing} is a file, not a folder, so {folder} cannot go there; choose another place")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(f"{key}: cannot write {folder} ({err.strerror or err}); choose another place") from None


def check_free_space(folder: str | Path, needed_bytes: int, key: str = "--out", what: str = "the export") -> None:
    """Stop before writing when the disk holding `folder` cannot take `needed_bytes` (plus 5% for metadata)."""
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed_bytes * 1.05:
        raise UserError(f"{key}: not enough disk space for {folder} ({_gib(free)} free, {what} needs about "
                        f"{_gib(needed_bytes)})")


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"
