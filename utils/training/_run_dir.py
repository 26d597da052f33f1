"""The run folder: checks before a run starts, complete-checkpoint markers, and resume discovery.

checkpoints/RUN/ holds recipe.resolved.yaml, checkpoint-N/, best/, metrics.jsonl, completions.jsonl, plots/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from utils.config import Recipe
from utils.errors import UserError

RESOLVED_RECIPE = "recipe.resolved.yaml"
COMPLETE_MARKER = "checkpoint.complete"  # written after TRL/transformers finished every file of a checkpoint
METRICS = "metrics.jsonl"
COMPLETIONS = "completions.jsonl"
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


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """Newest checkpoint whose save finished; a half-written one (killed mid-save) is never returned."""
    for _, path in reversed(checkpoints(run_dir)):
        if is_complete(path):
            return path
    return None


def prepare_run_dir(recipe: Recipe, resume: bool, force: bool) -> Path | None:
    """Check the run folder before any heavy work; returns the checkpoint to resume from (or None).

    A folder holding another recipe, or checkpoints of this one, is refused unless --resume or --force:
    nothing a user trained is overwritten by accident. --force starts over in an emptied folder.
    """
    run_dir = recipe.run_dir
    if resume and force:
        raise UserError("--resume and --force contradict each other: --force starts over")
    if resume:
        checkpoint = last_complete_checkpoint(run_dir)
        if checkpoint is None:
            raise UserError(f"{run_dir}: nothing to resume (no complete checkpoint-N folder)")
        return checkpoint
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    if force:
        shutil.rmtree(run_dir)
        return None
    saved = run_dir / RESOLVED_RECIPE
    if saved.is_file():
        try:
            previous = yaml.safe_load(saved.read_text())
        except yaml.YAMLError:
            previous = None
        if _comparable(previous) != _comparable(recipe.to_dict()):
            raise UserError(
                f"{run_dir} holds a run of a different recipe: pass --force to replace it, "
                "or set output.run_name to keep both"
            )
    if checkpoints(run_dir) or saved.is_file():
        raise UserError(f"{run_dir} already holds this run: pass --resume to continue it or --force to start over")
    raise UserError(f"{run_dir} exists and is not a run folder: choose another output.run_name or pass --force")


def _comparable(resolved: object) -> object:
    """A resolved recipe minus where the folder lives: a moved run folder is still the same run."""
    if not isinstance(resolved, dict):
        return resolved
    output = {k: v for k, v in resolved.get("output", {}).items() if k != "dir"}
    return {**resolved, "output": output}


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
