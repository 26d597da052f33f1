"""Training's side of the run folder: checks before a run starts, and what a resume keeps or refuses.

The folder's layout and what can be read from it (checkpoints, markers, best/, its recipe) are utils.runs'.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from utils.config import Recipe
from utils.errors import UserError
from utils.files import is_temp, write_atomic
from utils.runs import LOCK, RESOLVED_RECIPE, RESUMES, checkpoints, last_complete_checkpoint, step_of

# Recipe keys a resumed run may change: they decide how a run is watched, saved or how long it goes on, not
# what it learns from. Any other change (model, LoRA, data, prompt, rewards, optimisation) is another run.
# rewards_on_error says what a failing reward does, so a run stopped by one can go on with `skip`.
# dynamic_sampling picks which of the same problems' groups a step trains on: turning it on for a run that
# learns nothing is what the zero-advantage warning advises (and runs saved before the section existed lack it).
HARMLESS_CHANGES = ("eval.", "output.", "data.cache", "model.cpu_bf16_generation", "training.logging_steps",
                    "training.save_steps", "training.save_total_limit", "training.max_steps", "training.report_to",
                    "rewards_on_error", "dynamic_sampling.")


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
        _check_same_run(recipe, saved, step_of(checkpoint) or 0, force, log)
        return checkpoint
    if saved is not None and decisive_changes(saved, recipe.to_dict()):
        raise UserError(f"{run_dir} holds a run of a different recipe: pass --force to replace it, "
                        "or set output.run_name to keep both")
    if checkpoints(run_dir) or saved is not None:
        raise UserError(f"{run_dir} already holds this run: pass --resume to continue it or --force to start over")
    raise UserError(f"{run_dir} exists and is not a run folder: choose another output.run_name or pass --force")


def _run_files(run_dir: Path) -> list[Path]:
    """What a run wrote: not the lock, nor a file left half-written by a kill (it was never the run's)."""
    return [p for p in run_dir.iterdir() if p.name != LOCK and not is_temp(p)]


def _empty(run_dir: Path) -> None:
    """Remove what a run wrote (half-written leftovers too), keeping the lock file this run holds."""
    for path in (p for p in run_dir.iterdir() if p.name != LOCK):
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
    """The changed keys that make another run: not harmless, and not a recipe key added since the run was saved
    that stands at its default (a new option defaults to what the suite did before it: the run did just that)."""
    return _decisive(recipe_changes(before, after), before)


def _decisive(changes: dict[str, tuple[Any, Any]], before: dict[str, Any]) -> list[str]:
    saved, defaults = flatten(before), _section_defaults()
    return [k for k, (_, value) in changes.items() if not k.startswith(HARMLESS_CHANGES)
            and not (k not in saved and k in defaults and value == defaults[k])]


def _section_defaults() -> dict[str, Any]:
    """{dotted key: default} for the sections' fields. Not rewards (a reward absent from a recipe is one it does
    not use) nor training (only what a recipe sets is kept; TRL's own defaults are another matter)."""
    return {k: v for k, v in flatten(Recipe().to_dict()).items() if not k.startswith(("rewards.", "training."))}


def _check_same_run(recipe: Recipe, saved: dict[str, Any] | None, step: int, force: bool,
                    log: Callable[[str], None]) -> None:
    """A resume continues the same run: refuse a changed model, data, prompt, rewards or optimisation (unless
    --force), and record harmless changes in resumes.jsonl."""
    if saved is None:
        return
    changes = recipe_changes(saved, recipe.to_dict())
    decisive = _decisive(changes, saved)
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
    write_atomic(path, "".join(k + "\n" for k in kept))
