"""What is being exported: a run folder (its best/ or a checkpoint-N) or a bare adapter folder, the base model
the adapter was trained on, and a few of the run's own prompts to verify with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe
from utils.data import render_prompt
from utils.errors import UserError
from utils.formats import build_messages
from utils.models import adapter_config, find_adapter_base
from utils.runs import (
    COMPLETIONS,
    RESOLVED_RECIPE,
    checkpoint_dir,
    find_run_dir,
    is_complete,
    model_step,
    run_recipe,
    started_in,
    trained_model_folder,
)

# Used when the adapter comes without its run (no completions.jsonl to take the run's prompts from).
FALLBACK_PROBLEMS = [
    "What is 12 * 7?",
    "Solve for x: 3x + 5 = 20.",
    "A shop sells pens at 3 for $2. How much do 12 pens cost?",
]
VERIFY_PROMPTS = 3


@dataclass
class ExportSource:
    adapter_dir: Path
    base: str  # the base model the adapter was trained on (a folder or a hub id)
    run_dir: Path | None = None
    step: int | None = None
    recipe: Recipe | None = None  # the run's recipe.resolved.yaml, validated, if the adapter comes with its run


def find_source(path: str | Path, checkpoint: int | None = None, base: str | None = None) -> ExportSource:
    """Resolve RUN_OR_ADAPTER (+ --checkpoint, --base) to the adapter folder and its base model."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run or adapter folder")
    run_dir = find_run_dir(path)  # the run itself, or the run a checkpoint-N/ or best/ belongs to
    if checkpoint is not None and run_dir != path:
        raise UserError(f"--checkpoint {checkpoint}: {path} is not a run folder (no {RESOLVED_RECIPE}); "
                        "give the run folder, or the checkpoint's folder without --checkpoint")
    adapter_dir = _adapter_folder(path, checkpoint) if run_dir == path else path
    config = adapter_config(adapter_dir)
    if config is None:
        what = f"a run folder ({RESOLVED_RECIPE}) nor" if run_dir is None else "the run's"
        raise UserError(f"{adapter_dir}: no adapter_config.json: neither {what} a LoRA adapter folder")
    recipe = run_recipe(run_dir) if run_dir else None
    home = started_in(run_dir, recipe) if run_dir and recipe else None
    found = find_adapter_base(adapter_dir, home, base)
    assert found is not None  # adapter_config.json is there
    return ExportSource(adapter_dir, found, run_dir, model_step(adapter_dir), recipe)


def _adapter_folder(run_dir: Path, checkpoint: int | None) -> Path:
    """`checkpoint-N` when asked (it must be complete), else best/, else the newest complete checkpoint."""
    if checkpoint is not None:
        folder = checkpoint_dir(run_dir, checkpoint)
        if not folder.is_dir():
            raise UserError(f"--checkpoint {checkpoint}: {folder} does not exist")
        if not is_complete(folder):
            raise UserError(f"--checkpoint {checkpoint}: {folder} was not saved completely (no checkpoint.complete)")
        return folder
    folder = trained_model_folder(run_dir)
    if folder is None:
        raise UserError(f"{run_dir}: no best/ and no complete checkpoint-N folder to export")
    return folder


def verification_prompts(source: ExportSource, tokenizer: Any) -> tuple[list[str], str]:
    """A few prompts in the run's own format (from its completions.jsonl), rendered by the chat template;
    returns them and where they came from."""
    prompt = (source.recipe or Recipe()).prompt  # an adapter without its run: the recipe defaults
    problems, origin = _run_problems(source.run_dir), f"the run's {COMPLETIONS}"
    if not problems:
        problems, origin = FALLBACK_PROBLEMS, "built-in math problems (no run data beside the adapter)"
    rendered = [render_prompt(build_messages(p, prompt.format, prompt.system), tokenizer) for p in problems]
    return rendered[:VERIFY_PROMPTS], origin


def _run_problems(run_dir: Path | None) -> list[str]:
    path = run_dir / COMPLETIONS if run_dir else None
    if path is None or not path.is_file():
        return []
    seen: list[str] = []
    for line in path.read_text().splitlines():
        try:
            prompt = json.loads(line).get("prompt")
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
        if prompt and prompt not in seen:
            seen.append(prompt)
        if len(seen) == VERIFY_PROMPTS:
            break
    return seen
