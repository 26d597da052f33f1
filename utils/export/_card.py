"""The model card (README.md) of an export: where the weights came from, how they were trained, what the run
measured, and how the export was verified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from utils.config import Recipe
from utils.export._source import ExportSource
from utils.export._verify import Check
from utils.runs import METRICS, best_record


def model_card(source: ExportSource, kind: str, dtype: str, checks: list[Check] | None, prompts_origin: str,
               adapter_effect: float | None = None) -> str:
    """Markdown with a YAML header the Hub reads (base_model, library, tags). `kind`: "merged" or "adapter";
    `checks` None means the export was written with --no-verify."""
    adapter = kind == "adapter"
    header = {
        "base_model": source.base,
        "library_name": "peft" if adapter else "transformers",
        "tags": ["grpo", "trl", "math", "lora" if adapter else "merged-lora"],
    }
    step = f"step {source.step}" if source.step is not None else "an unknown step"
    what = "The LoRA adapter" if adapter else "LoRA adapter merged into its base model"
    lines = [
        f"---\n{yaml.safe_dump(header, sort_keys=False).strip()}\n---\n",
        f"# {Path(source.run_dir or source.adapter_dir).name}\n",
        f"{what}, exported by grpo-math `scripts/merge_lora.py` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.\n",
        f"- base model: `{source.base}`",
        f"- adapter: `{source.adapter_dir}` ({step})",
        f"- weights: {dtype}" + ("" if adapter else " (merged in fp32, then cast)"),
        *_training_lines(source),
        "",
        *_metrics_lines(source.run_dir),
        *_verification_lines(checks, prompts_origin, adapter_effect),
        *_recipe_lines(source.recipe),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _training_lines(source: ExportSource) -> list[str]:
    recipe = source.recipe
    if recipe is None:
        return ["- training run: not known (an adapter folder without its run)"]
    data, lora = recipe.data, recipe.lora
    filters = {k: v for k, v in dataclasses.asdict(data.filters).items() if v not in (None, False, [], {})}
    return [
        f"- training run: `{source.run_dir}` (GRPO, TRL)",
        f"- data: `{data.dataset}` config {data.config}, subset {data.subset}, validation {data.validation}, "
        f"seed {data.seed}",
        f"- filters: {json.dumps(filters)}",
        f"- prompt format: {recipe.prompt.format}; rewards: {json.dumps(recipe.rewards)}",
        f"- LoRA: r {lora.r}, alpha {lora.alpha}, targets {lora.target_modules}",
    ]


def run_metrics(run_dir: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The last training log (reward, each reward's mean, loss), every evaluation, and best.json."""
    last: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []
    path = run_dir / METRICS if run_dir else None
    if path and path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write
            if "eval/accuracy" in record:
                evals.append(record)
            elif "reward" in record:
                last = record
    return last, evals, best_record(run_dir) if run_dir else {}


def _metrics_lines(run_dir: Path | None) -> list[str]:
    last, evals, best = run_metrics(run_dir)
    if not (last or evals):
        return []
    lines = ["## Metrics from the run\n", "| metric | value | step |", "|---|---|---|"]
    for key in sorted(k for k in last if k == "reward" or k == "loss" or (k.startswith("rewards/") and k.endswith("/mean"))):
        lines.append(f"| {key} (last logged) | {last[key]:.4g} | {last.get('step')} |")
    for record in evals:
        lines.append(f"| validation accuracy (greedy pass@1, {record.get('eval/total')} problems) | "
                     f"{record['eval/accuracy']:.1%} | {record.get('step')} |")
    if best:
        lines.append(f"| best validation accuracy (best/) | {best.get('accuracy', 0):.1%} | {best.get('step')} |")
    return [*lines, ""]


def _verification_lines(checks: list[Check] | None, prompts_origin: str, adapter_effect: float | None) -> list[str]:
    lines = ["## Verification\n"]
    if checks is None:
        return [*lines, "Not verified: exported with `--no-verify`.", ""]
    lines.append(f"After writing, the export was reloaded and compared with base + adapter (fp32) on prompts "
                 f"from {prompts_origin}:\n")
    lines += [f"- {check.describe()}" for check in checks]
    if adapter_effect is not None:
        lines.append(f"- for scale: the adapter moves the base's logits by up to {adapter_effect:.3g}")
    return [*lines, ""]


def _recipe_lines(recipe: Recipe | None) -> list[str]:
    if recipe is None:
        return []
    return ["## Recipe\n", "```yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False).strip(), "```"]
