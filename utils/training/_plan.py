"""A readable plan of what a training run would do, printed by `grpo_train.py --dry-run`."""

from __future__ import annotations

from typing import Any

from utils.config import Recipe
from utils.models import Hardware, detect_hardware, resolve_backend
from utils.training._setup import build_grpo_config, differences_from_trl, uses_cpu_bf16_generation


def _reward_line(name: str, spec: object) -> str:
    if isinstance(spec, dict):
        params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "weight")
        return f"{name} x {spec['weight']}" + (f" ({params})" if params else "")
    return f"{name} x {spec}"


def _generation(recipe: Recipe, hw: Hardware, config: Any, backend: str) -> str:
    if recipe.model.fast_inference and backend == "unsloth":
        return "vLLM (Unsloth's engine)"
    if config.use_vllm:
        return f"vLLM (TRL, {config.vllm_mode})"
    if uses_cpu_bf16_generation(recipe, hw, config, backend):
        return "bf16 merged copy of the policy (CPU)"
    return "transformers generate"


def format_plan(recipe: Recipe, hw: Hardware | None = None) -> str:
    hw = hw or detect_hardware()
    backend = resolve_backend(recipe.model, hw)
    config = build_grpo_config(recipe, hw)
    m, d, lora = recipe.model, recipe.data, recipe.lora
    lines = [
        f"Recipe     {recipe.source or '(in memory)'}",
        f"Machine    {hw.describe()}",
        f"Model      {m.name}" + (f" @ {m.revision}" if m.revision else ""),
        f"Backend    {backend.name}: {backend.reason}",
        f"           4-bit: {'yes' if m.load_in_4bit else 'no'}; generation: {_generation(recipe, hw, config, backend.name)}"
        + f"; max_seq_length {m.max_seq_length}",
        "LoRA       "
        + (f"r={lora.r} alpha={lora.alpha} dropout={lora.dropout} on {lora.target_modules}" if lora.enabled else "off (full fine-tuning)"),
        f"Data       {d.dataset}" + (f" [{d.config}]" if d.config else "") + f" split={d.split} format={d.format}",
        f"           subset: {d.subset if d.subset else 'all rows'}; validation: {d.validation}; seed {d.seed}",
        f"Prompt     {recipe.prompt.format}",
        "Rewards    " + ", ".join(_reward_line(n, s) for n, s in recipe.rewards.items()),
        f"Eval       every {recipe.eval.every_steps} steps on "
        + ", ".join(f"{w['name']} ({w['samples']} problems)" for w in recipe.eval.watched())
        + f"; best/ by {recipe.eval.best_name}"
        if recipe.eval.every_steps
        else "Eval       off during training",
        "GRPOConfig (values that differ from TRL's defaults on this machine)",
    ]
    diff = differences_from_trl(config, hw)
    width = max((len(k) for k in diff), default=0)
    for key, (ours, default) in sorted(diff.items()):
        lines.append(f"  {key:<{width}}  {ours!r}   (TRL: {default!r})")
    lines.append(f"Output     {recipe.run_dir}/")
    return "\n".join(lines)
