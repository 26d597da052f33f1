"""The model card (README.md) of an export: where the weights came from, how they were trained, what the run
measured, and how the export was verified."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from utils.export._source import ExportSource
from utils.export._verify import Check


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
    if not recipe:
        return ["- training run: not known (an adapter folder without its run)"]
    data, prompt, lora = recipe.get("data", {}), recipe.get("prompt", {}), recipe.get("lora", {})
    filters = {k: v for k, v in (data.get("filters") or {}).items() if v not in (None, False, [], {})}
    return [
        f"- training run: `{source.run_dir}` (GRPO, TRL)",
        f"- data: `{data.get('dataset')}` config {data.get('config')}, subset {data.get('subset')}, "
        f"validation {data.get('validation')}, seed {data.get('seed')}",
        f"- filters: {json.dumps(filters)}",
        f"- prompt format: {prompt.get('format')}; rewards: {json.dumps(recipe.get('rewards', {}))}",
        f"- LoRA: r {lora.get('r')}, alpha {lora.get('alpha')}, targets {lora.get('target_modules')}",
    ]


def run_metrics(run_dir: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The last training log (reward, each reward's mean, loss), every evaluation, and best.json."""
    last: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []
    path = run_dir / "metrics.jsonl" if run_dir else None
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
    best_file = run_dir / "best" / "best.json" if run_dir else None
    best = json.loads(best_file.read_text()) if best_file and best_file.is_file() else {}
    return last, evals, best


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


def _recipe_lines(recipe: dict[str, Any]) -> list[str]:
    if not recipe:
        return []
    return ["## Recipe\n", "```yaml", yaml.safe_dump(recipe, sort_keys=False).strip(), "```"]
