"""TRL GRPOConfig from a recipe, with defaults chosen for the machine it runs on."""

from __future__ import annotations

from typing import Any

from utils.errors import UserError
from utils.hardware import Hardware, detect_hardware
from utils.recipe import Recipe

# Our defaults where TRL's do not suit a run folder people read: log every step (metrics.jsonl and
# plots need it), no external trackers, keep the last few checkpoints only.
RUN_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 100,
    "save_total_limit": 3,
}
# Keys not worth showing in a plan's diff: paths we set, and bookkeeping TRL derives.
_DIFF_IGNORED = {"output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token"}


def machine_defaults(hw: Hardware) -> dict[str, Any]:
    """Precision and device flags per machine: TRL's own GRPOConfig() raises on a CPU machine."""
    if not hw.cuda:
        return {"use_cpu": True}  # TRL then trains under bf16 autocast, the fastest CPU setting measured
    if hw.bf16:
        return {"bf16": True}
    return {"bf16": False, "fp16": True}  # T4 and older: no bf16


def grpo_config_kwargs(recipe: Recipe, hw: Hardware | None = None) -> dict[str, Any]:
    hw = hw or detect_hardware()
    kwargs: dict[str, Any] = {**RUN_DEFAULTS, **machine_defaults(hw), **recipe.training}
    if kwargs.get("use_vllm") and not hw.vllm_installed:
        raise UserError("training.use_vllm: true, but vLLM is not installed here (make setup-gpu on a CUDA machine)")
    kwargs["output_dir"] = str(recipe.run_dir)
    return kwargs


def build_grpo_config(recipe: Recipe, hw: Hardware | None = None) -> Any:
    """The GRPOConfig for this recipe on this machine; TRL's own consistency errors become UserErrors."""
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(recipe, hw)
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"training: TRL rejects these settings: {first_line}") from None


def trl_default_config(output_dir: str, hw: Hardware | None = None) -> Any:
    """GRPOConfig as bare TRL would build it on this machine (only the flags TRL requires to start)."""
    from trl import GRPOConfig

    hw = hw or detect_hardware()
    return GRPOConfig(output_dir=output_dir, **({} if hw.cuda else {"use_cpu": True}))


def differences_from_trl(config: Any, hw: Hardware | None = None) -> dict[str, tuple[Any, Any]]:
    """{field: (ours, trl_default)} for every field where the effective config differs from TRL's."""
    ours = config.to_dict()
    base = trl_default_config(config.output_dir, hw).to_dict()
    return {k: (v, base.get(k)) for k, v in ours.items() if k not in _DIFF_IGNORED and base.get(k) != v}
