"""Faults met once training runs that a user can fix and then go on from: a save that cannot write its files
(a full disk, a quota, a failing drive) and a reward that fails. The run stops with one line; its complete
checkpoints stay, a half-written one is removed, and `--resume` continues from the last complete one.

torch.save reports a short write as a RuntimeError from its zip writer ("PytorchStreamWriter failed writing
file ...: file write failed", or "[enforce fail at inline_container.cc] unexpected pos ..." when the end of the
archive is cut), safetensors as its own SafetensorError ("I/O error: No space left on device (os error 28)"),
json and the tokenizer files as OSError: all three are write failures here.
"""

from __future__ import annotations

import errno
import functools
import math
import re
import shutil
from pathlib import Path
from typing import Any

from utils.errors import UserError, first_line
from utils.runs import COMPLETE_MARKER, last_complete_checkpoint

_TORCH_WRITER = re.compile(r"PytorchStreamWriter|inline_container|file write failed")
_NO_SPACE = re.compile(r"No space left|os error 28|quota exceeded", re.IGNORECASE)


class RunFailed(UserError):
    """A fault after training began. `checkpoint` is the last complete one, which `--resume` continues from
    (None: nothing was saved yet, and the plain command starts the run again)."""

    def __init__(self, problem: str, checkpoint: Path | None) -> None:
        self.problem = problem
        self.checkpoint = checkpoint
        super().__init__(self.with_command("--resume" if checkpoint else "the same command"))

    def with_command(self, command: str) -> str:
        """The one line a script prints: the problem, its fix, and the command that goes on from here."""
        if self.checkpoint is None:
            return f"{self.problem}, then start again (no checkpoint was saved yet) with: {command}"
        return f"{self.problem}, then continue from {self.checkpoint.name} with: {command}"


class SaveFailed(Exception):
    """A save inside training that could not write (`what`: "the checkpoint", "best/"); PreparedRun.train
    turns it into a RunFailed once training has unwound."""

    def __init__(self, what: str, step: int, cause: BaseException) -> None:
        super().__init__(f"{what} after step {step}: {first_line(cause)}")
        self.what = what
        self.step = step
        self.cause = cause


def is_write_failure(err: BaseException) -> bool:
    """An exception from a save that means the files could not be written (not a bug in what was saved)."""
    from safetensors import SafetensorError

    if isinstance(err, (OSError, SafetensorError)):
        return True
    return isinstance(err, RuntimeError) and _TORCH_WRITER.search(str(err)) is not None


def guard_checkpoint_saves(trainer: Any, main: bool) -> None:
    """A checkpoint save that cannot write ends in SaveFailed, with its half-written folder removed (its space
    freed; it was never marked complete) and the earlier checkpoints untouched: transformers rotates old ones
    out only after a save succeeded."""
    save = trainer._save_checkpoint  # transformers' one writer of checkpoint-N/: weights, optimizer, state

    @functools.wraps(save)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        step = trainer.state.global_step
        folder = Path(trainer.args.output_dir) / f"checkpoint-{step}"
        if main:  # a folder being rewritten is complete again only when RunMonitor marks it after this save
            (folder / COMPLETE_MARKER).unlink(missing_ok=True)
        try:
            return save(*args, **kwargs)
        except Exception as err:
            if not is_write_failure(err):
                raise
            if main:
                shutil.rmtree(folder, ignore_errors=True)
            raise SaveFailed("the checkpoint", step, err) from err

    trainer._save_checkpoint = guarded


def save_failure(run_dir: Path, failed: SaveFailed) -> RunFailed:
    """The one line for a save that could not write: a full disk says how much room the run needs."""
    previous = last_complete_checkpoint(run_dir)
    needed = sum(f.stat().st_size for f in previous.rglob("*") if f.is_file()) if previous else 0
    free = shutil.disk_usage(run_dir).free
    cause = failed.cause
    full = (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
            or _NO_SPACE.search(str(cause)) is not None or free < needed)  # torch's own text names no cause
    what = f"{failed.what} after step {failed.step}"
    if full:
        need = f"about {math.ceil(needed / 2**20)} MiB needed, " if needed else ""  # rounded up, free down
        problem = f"{run_dir}: disk full while saving {what} ({need}{free // 2**20} MiB free): free some space"
    else:
        problem = (f"{run_dir}: could not write {what} ({first_line(cause)}; {free // 2**20} MiB free): "
                   "check the disk (space, quota, permissions)")
    return RunFailed(problem, previous)


def disk_full(run_dir: Path, step: int) -> RunFailed:
    """A write to the run folder outside a save (metrics.jsonl, plots) that found the disk full."""
    free = shutil.disk_usage(run_dir).free
    return RunFailed(f"{run_dir}: disk full while writing the run folder after step {step} "
                     f"({free // 2**20} MiB free): free some space", last_complete_checkpoint(run_dir))
