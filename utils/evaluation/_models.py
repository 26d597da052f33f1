"""What MODEL names for evaluation: a hub id, a model folder, a LoRA adapter folder, a run folder or one of
its checkpoints. Everything is checked (paths, the adapter's base, the run's recipe) before a model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe, sections_from_dict
from utils.errors import UserError
from utils.models import could_be_hub_id, find_adapter_base, holds_weights
from utils.runs import find_run_dir, run_recipe, started_in, trained_model_folder


@dataclass
class EvalModel:
    """A model to evaluate, resolved but not loaded."""

    target: str  # as the user gave it
    path: str  # the folder (or hub id) that is loaded: a checkpoint, best/, an adapter or a model
    base: str | None  # the base model of a LoRA adapter
    run_dir: Path | None  # the training run it belongs to
    recipe: Recipe | None  # that run's recipe (prompt format, openr1-val, model settings)

    @property
    def default_out(self) -> Path:
        """Where its evaluation goes: inside its run folder, else checkpoints/eval/NAME/."""
        if self.run_dir is not None:
            return self.run_dir / "eval" / Path(self.path).name
        name = Path(self.path).name if Path(self.path).exists() else self.path.replace("/", "_")
        return Path("checkpoints") / "eval" / name

    @property
    def label(self) -> str:
        if self.run_dir is not None:
            return f"{self.run_dir.name}/{Path(self.path).name}"
        return Path(self.path).name if Path(self.path).exists() else self.path


def _run_model(run_dir: Path) -> Path:
    folder = trained_model_folder(run_dir)
    if folder is None:
        raise UserError(f"{run_dir}: run folder without best/ or a complete checkpoint-N/ to evaluate")
    return folder


def resolve_model(target: str, base: str | None = None) -> EvalModel:
    """Check MODEL and find what to load; UserError (one line) for anything missing. `base` (evaluate.py's
    --base) is the base model of a LoRA adapter, over the one it records."""
    path = Path(target).expanduser()
    if not path.exists():
        if not could_be_hub_id(target):
            raise UserError(f"{target}: no such folder (MODEL: a hub id owner/name, a model, adapter or run folder)")
        return EvalModel(target, target, None, None, None)
    if not path.is_dir():
        raise UserError(f"{target}: not a folder (MODEL: a hub id, a model, adapter or run folder)")
    run_dir = find_run_dir(path)  # the run itself, or the run a checkpoint-N/ or best/ belongs to
    chosen = _run_model(path) if run_dir == path else path
    if not holds_weights(chosen):
        raise UserError(f"{chosen}: not a model folder (no config.json or adapter_config.json)")
    recipe = run_recipe(run_dir) if run_dir else None
    home = started_in(run_dir, recipe) if run_dir and recipe else None
    return EvalModel(target, str(chosen), find_adapter_base(chosen, home, base), run_dir, recipe)


def load_eval_model(spec: EvalModel, dtype: str = "auto") -> tuple[Any, Any]:
    """Model and tokenizer for generation: transformers, full precision (fp32 on CPU), a LoRA adapter merged
    into its base in memory (one set of weights generates faster than base + adapter layers)."""
    from utils.models import load_model_and_tokenizer

    model = dict(spec.recipe.to_dict()["model"]) if spec.recipe else {}
    model.update(name=spec.path, backend="hf", load_in_4bit=False, fast_inference=False, dtype=dtype)
    recipe = sections_from_dict({"model": model, "lora": {"enabled": False}}, where=f"evaluating {spec.target}")
    loaded = load_model_and_tokenizer(recipe, base=spec.base)
    loaded.model.eval()
    return loaded.model, loaded.tokenizer


def eval_tokenizer(spec: EvalModel) -> Any:
    """The tokenizer alone (a second, no weights): the adapter's own where it saved one, else its base's."""
    from transformers import AutoTokenizer

    from utils.errors import first_line

    folder = spec.path if spec.base is None or (Path(spec.path) / "tokenizer_config.json").is_file() else spec.base
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise UserError(f"{folder}: cannot load a tokenizer ({first_line(err)})") from None
