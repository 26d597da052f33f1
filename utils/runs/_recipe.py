"""Which run a path belongs to, and that run's recipe, read back and validated."""

from __future__ import annotations

import os
from pathlib import Path

from utils.config import Recipe, read_recipe, sections_from_dict
from utils.runs._folder import RESOLVED_RECIPE


def is_run_dir(path: Path) -> bool:
    return (path / RESOLVED_RECIPE).is_file()


def find_run_dir(path: Path) -> Path | None:
    """The run folder `path` is, or the one it sits in (its checkpoint-N/, best/); None for a folder of no run."""
    if is_run_dir(path):
        return path
    return path.parent if is_run_dir(path.parent) else None


def run_recipe(run_dir: Path) -> Recipe:
    """A run's recipe.resolved.yaml, validated (the defaults of a key it lacks are the recipe's own); UserError
    naming the file when it no longer validates.

    Its `training:` and `rewards:` are kept as written, unchecked: they were checked when the run trained, and
    readers (evaluation, export) need neither TRL nor a custom reward registered in the training process.
    """
    path = run_dir / RESOLVED_RECIPE
    raw = dict(read_recipe(path).raw)
    training, rewards = raw.pop("training", None), raw.pop("rewards", None)
    recipe = sections_from_dict(raw, where=str(path))
    recipe.training = dict(training) if isinstance(training, dict) else {}
    if isinstance(rewards, dict) and rewards:
        recipe.rewards = dict(rewards)
    return recipe


def started_in(run_dir: Path, recipe: Recipe) -> Path | None:
    """The folder the run was started from, as its recipe tells: the run folder's path less output.dir/run_name
    (what relative paths in the recipe, model.name among them, were relative to). None where output.dir is
    absolute or the run folder has been moved or renamed since."""
    relative = recipe.run_dir
    if relative.is_absolute() or ".." in relative.parts:
        return None
    here = Path(os.path.abspath(run_dir)).parts  # not resolve(): the path as the run wrote it, symlinks kept
    if len(here) <= len(relative.parts) or here[-len(relative.parts):] != relative.parts:
        return None
    return Path(*here[: -len(relative.parts)])
