"""One writer at a time in a folder (a run folder, an evaluation's --out): an exclusive lock on FOLDER/.lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.files import check_writable
from utils.runs._folder import LOCK


class FolderLock:
    """Held for the whole job; a second job in the same folder is refused with `hint` (what to do instead).
    The folder is checked first (utils.files.check_writable, naming `key`): one that cannot be written is one
    line, not an OSError.

    The kernel drops a flock when its process dies, so a lock left by a killed job is simply taken over.
    """

    def __init__(self, folder: Path, what: str = "another job", hint: str = "or choose another folder",
                 key: str = "--out") -> None:
        self.path = folder / LOCK
        self.what = what
        self.hint = hint
        self.key = key
        self.handle: Any = None

    def __enter__(self) -> FolderLock:
        check_writable(self.path.parent, self.key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.path.parent} is in use by {self.what} in progress (pid {holder}): wait for it, "
                            f"{self.hint}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the flock; the file stays (removing it would race a waiting job)
            self.handle = None
