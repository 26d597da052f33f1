"""What is being exported: a run folder (its best/ or a checkpoint-N) or a bare adapter folder, the base model
the adapter was trained on, and a few of the run's own prompts to verify with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.data import build_messages, render_prompt
from utils.errors import UserError
from utils.models import adapter_config
from utils.training import trained_model_folder

RESOLVED_RECIPE = "recipe.resolved.yaml"
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
    recipe: dict[str, Any] = field(default_factory=dict)  # the run's recipe.resolved.yaml, if any


def find_source(path: str | Path, checkpoint: int | None = None, base: str | None = None) -> ExportSource:
    """Resolve RUN_OR_ADAPTER (+ --checkpoint, --base) to the adapter folder and its base model."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run or adapter folder")
    run_dir = path if (path / RESOLVED_RECIPE).is_file() else None
    adapter_dir = _adapter_folder(path, checkpoint) if run_dir else path
    config = adapter_config(adapter_dir)
    if config is None:
        what = "a run folder (recipe.resolved.yaml) nor" if run_dir is None else "the run's"
        raise UserError(f"{adapter_dir}: no adapter_config.json: neither {what} a LoRA adapter folder")
    recipe = yaml.safe_load((run_dir / RESOLVED_RECIPE).read_text()) if run_dir else {}
    return ExportSource(adapter_dir, base or _recorded_base(adapter_dir, config), run_dir, _step(adapter_dir), recipe or {})


def _adapter_folder(run_dir: Path, checkpoint: int | None) -> Path:
    """`checkpoint-N` when asked (it must be complete), else best/, else the newest complete checkpoint."""
    if checkpoint is not None:
        folder = run_dir / f"checkpoint-{checkpoint}"
        if not folder.is_dir():
            raise UserError(f"--checkpoint {checkpoint}: {folder} does not exist")
        if not (folder / "checkpoint.complete").is_file():
            raise UserError(f"--checkpoint {checkpoint}: {folder} was not saved completely (no checkpoint.complete)")
        return folder
    folder = trained_model_folder(run_dir)
    if folder is None:
        raise UserError(f"{run_dir}: no best/ and no complete checkpoint-N folder to export")
    return folder


def _recorded_base(adapter_dir: Path, config: dict[str, Any]) -> str:
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{adapter_dir / 'adapter_config.json'}: no base_model_name_or_path; pass --base MODEL")
    looks_local = str(base).startswith((".", "/", "~")) or str(base).count("/") != 1
    if looks_local and not Path(base).expanduser().exists():
        raise UserError(f"{adapter_dir}: the adapter's base model {base} (adapter_config.json base_model_name_or_path) "
                        "is not here; pass --base MODEL")
    return str(base)


def _step(adapter_dir: Path) -> int | None:
    """The training step the adapter comes from: best.json's step for best/, N for checkpoint-N."""
    best = adapter_dir / "best.json"
    if best.is_file():
        return int(json.loads(best.read_text()).get("step", 0))
    name = adapter_dir.name
    return int(name.split("-", 1)[1]) if name.startswith("checkpoint-") and name[11:].isdigit() else None


def verification_prompts(source: ExportSource, tokenizer: Any) -> tuple[list[str], str]:
    """A few prompts in the run's own format (from its completions.jsonl), rendered by the chat template;
    returns them and where they came from."""
    prompt_section = source.recipe.get("prompt", {})
    problems, origin = _run_problems(source.run_dir), "the run's completions.jsonl"
    if not problems:
        problems, origin = FALLBACK_PROBLEMS, "built-in math problems (no run data beside the adapter)"
    fmt = prompt_section.get("format", "think_boxed")
    rendered = [render_prompt(build_messages(p, fmt, prompt_section.get("system")), tokenizer) for p in problems]
    return rendered[:VERIFY_PROMPTS], origin


def _run_problems(run_dir: Path | None) -> list[str]:
    path = run_dir / "completions.jsonl" if run_dir else None
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
