"""The run folder: checks before a run starts, complete-checkpoint markers, and resume discovery.

checkpoints/RUN/ holds recipe.resolved.yaml, checkpoint-N/, best/, metrics.jsonl, completions.jsonl, plots/.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from utils.config import Recipe
from utils.errors import UserError, first_line
from utils.models import holds_weights

RESOLVED_RECIPE = "recipe.resolved.yaml"
COMPLETE_MARKER = "checkpoint.complete"  # written after TRL/transformers finished every file of a checkpoint
METRICS = "metrics.jsonl"
COMPLETIONS = "completions.jsonl"
LOCK = ".lock"
RESUMES = "resumes.jsonl"  # one record per resume whose recipe changed harmless keys
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N folder, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file() and (checkpoint / "trainer_state.json").is_file()


def mark_complete(checkpoint: Path, step: int) -> None:
    tmp = checkpoint / (COMPLETE_MARKER + ".tmp")
    tmp.write_text(json.dumps({"step": step}) + "\n")
    tmp.replace(checkpoint / COMPLETE_MARKER)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint marked complete cannot be resumed from (a file damaged after the save), or None.

    Reads every file's framing without loading tensors: trainer_state.json parses, torch files are intact
    zip archives (their CRCs check), safetensors headers parse.
    """
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError) as err:
        return f"trainer_state.json: {first_line(err)}"
    for path in sorted(checkpoint.iterdir()):
        try:
            if path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                if bad:
                    return f"{path.name}: damaged entry {bad}"
            elif path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt"):
                    pass
        except Exception as err:  # zipfile, safetensors and OS errors alike: the file cannot be read back
            return f"{path.name}: {first_line(err)}"
    return None


def last_complete_checkpoint(run_dir: Path, log: Callable[[str], None] | None = None) -> Path | None:
    """Newest checkpoint whose save finished and whose files read back; a half-written one (killed mid-save)
    is never returned, and a damaged one is passed over (said through `log`)."""
    for _, path in reversed(checkpoints(run_dir)):
        if not is_complete(path):
            continue
        problem = checkpoint_problem(path) if log else None
        if problem is None:
            return path
        log(f"{path.name} is damaged ({problem}): passed over")
    return None


def trained_model_folder(run_dir: Path) -> Path | None:
    """What a run folder stands for when evaluated or exported: its best/ (when it holds weights), else its newest
    complete checkpoint; None when it has neither."""
    best = run_dir / "best"
    return best if holds_weights(best) else last_complete_checkpoint(run_dir)


def saved_best_accuracy(run_dir: Path) -> float | None:
    """The validation accuracy of the run's best/ checkpoint, if it has one."""
    try:
        return float(json.loads((run_dir / "best" / "best.json").read_text())["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trained_steps(checkpoint: Path) -> tuple[int, int]:
    """(global_step, max_steps) that a checkpoint's trainer state records."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return int(state.get("global_step", 0)), int(state.get("max_steps", 0))


def check_writable(run_dir: Path) -> None:
    """The run folder can be created and written: a read-only or misplaced output.dir fails before loading."""
    existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"output.dir: {existing} is a file, not a folder: the run folder {run_dir} cannot go there")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(f"output.dir: cannot write the run folder {run_dir} ({first_line(err)})") from None


class RunLock:
    """One run at a time in a run folder: an exclusive lock on RUN/.lock, held for the whole run.

    The kernel drops a flock when its process dies, so a lock left by a killed run is simply taken over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self.handle: Any = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.path.parent} is in use by a run in progress (pid {holder}): wait for it, "
                            "or set output.run_name for a separate run") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the flock; the file stays (removing it would race a waiting run)
            self.handle = None


# Recipe keys a resumed run may change: they decide how a run is watched, saved or how long it goes on, not
# what it learns from. Any other change (model, LoRA, data, prompt, rewards, optimisation) is another run.
# rewards_on_error says what a failing reward does, so a run stopped by one can go on with `skip`.
HARMLESS_CHANGES = ("eval.", "output.", "data.cache", "model.cpu_bf16_generation", "training.logging_steps",
                    "training.save_steps", "training.save_total_limit", "training.max_steps", "training.report_to",
                    "rewards_on_error")


def prepare_run_dir(recipe: Recipe, resume: bool, force: bool, log: Callable[[str], None] = print) -> Path | None:
    """Check the run folder before any heavy work; returns the checkpoint to resume from (or None).

    Nothing a user trained is overwritten by accident: a folder holding checkpoints is refused unless
    --resume or --force (start over). A folder whose run never completed a checkpoint holds nothing to keep
    and starts over by itself. `--resume --force` resumes even though the recipe changed.
    """
    run_dir = recipe.run_dir
    if not run_dir.exists() or not _run_files(run_dir):
        if resume:
            raise UserError(f"{run_dir}: nothing to resume (no run there; check output.dir and output.run_name)")
        return None
    if force and not resume:  # before reading checkpoints back: they are about to go
        _empty(run_dir)
        return None
    saved = _saved_recipe(run_dir)
    checkpoint = last_complete_checkpoint(run_dir, log)
    if checkpoint is None and saved is not None:
        log(f"{run_dir}: the earlier start saved no complete checkpoint: starting from the beginning")
        _empty(run_dir)
        return None
    if resume:
        if checkpoint is None:
            raise UserError(f"{run_dir}: nothing to resume (no complete checkpoint-N folder)")
        _check_same_run(recipe, saved, step_of(checkpoint), force, log)
        return checkpoint
    if saved is not None and decisive_changes(saved, recipe.to_dict()):
        raise UserError(f"{run_dir} holds a run of a different recipe: pass --force to replace it, "
                        "or set output.run_name to keep both")
    if checkpoints(run_dir) or saved is not None:
        raise UserError(f"{run_dir} already holds this run: pass --resume to continue it or --force to start over")
    raise UserError(f"{run_dir} exists and is not a run folder: choose another output.run_name or pass --force")


def _run_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.iterdir() if p.name != LOCK]


def _empty(run_dir: Path) -> None:
    """Remove what a run wrote, keeping the lock file this run holds."""
    for path in _run_files(run_dir):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _saved_recipe(run_dir: Path) -> dict[str, Any] | None:
    try:
        saved = yaml.safe_load((run_dir / RESOLVED_RECIPE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return saved if isinstance(saved, dict) else None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (before, after)} for every resolved-recipe value that differs."""
    old, new = flatten(before), flatten(after)
    return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def decisive_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [k for k in recipe_changes(before, after) if not k.startswith(HARMLESS_CHANGES)]


def _check_same_run(recipe: Recipe, saved: dict[str, Any] | None, step: int, force: bool,
                    log: Callable[[str], None]) -> None:
    """A resume continues the same run: refuse a changed model, data, prompt, rewards or optimisation (unless
    --force), and record harmless changes in resumes.jsonl."""
    if saved is None:
        return
    changes = recipe_changes(saved, recipe.to_dict())
    decisive = [k for k in changes if not k.startswith(HARMLESS_CHANGES)]
    if decisive and not force:
        shown = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in decisive[:4])
        more = f" and {len(decisive) - 4} more" if len(decisive) > 4 else ""
        raise UserError(f"--resume: the recipe changed what this run learns ({shown}{more}): undo the change, "
                        "or pass --force to resume anyway")
    if changes:
        log("resuming with changes: " + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))
        with (recipe.run_dir / RESUMES).open("a") as f:
            f.write(json.dumps({"step": step, "changes": {k: list(v) for k, v in changes.items()}}, default=str) + "\n")


def truncate_jsonl(path: Path, after_step: int) -> None:
    """Drop records logged after `after_step` (a resumed run logs those steps again)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= after_step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(k + "\n" for k in kept))
    tmp.replace(path)


def step_of(checkpoint: Path) -> int:
    match = _CHECKPOINT.match(checkpoint.name)
    return int(match.group(1)) if match else 0
