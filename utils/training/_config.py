"""TRL GRPOConfig from a recipe, with defaults chosen for the machine and backend it runs on."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

from utils.config import Recipe
from utils.errors import UserError, first_line
from utils.models import Hardware

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
    if not hw.cuda:  # TRL's use_cpu trains under bf16 autocast: only where the CPU computes bf16 natively
        return {"use_cpu": True} if hw.cpu.bf16 else {"use_cpu": True, "bf16": False}
    if hw.bf16:
        return {"bf16": True}
    return {"bf16": False, "fp16": True}  # T4 and older: no bf16


def check_trl_trains_here(backend: str, hw: Hardware, trl_version: str | None = None) -> None:
    """TRL 1.15 (Unsloth's pin) scores log-probs with a Triton kernel and has no CPU fallback: its
    GRPOTrainer fails at the first step on CPU. Unsloth's trainer replaces that loss; TRL 1.16 falls back."""
    from importlib.metadata import version

    from packaging.version import Version

    trl_version = trl_version or version("trl")
    if backend == "hf" and not hw.cuda and Version(trl_version) < Version("1.16"):
        raise UserError(
            f"TRL {trl_version}'s GRPOTrainer needs a GPU (a Triton log-prob kernel); on CPU use TRL >= 1.16 "
            "(the .venv that `make setup` builds) or model.backend: unsloth"
        )


def grpo_config_kwargs(recipe: Recipe, hw: Hardware, backend: str, **extra: Any) -> dict[str, Any]:
    """GRPOConfig keyword arguments: our run defaults, the machine's, the backend's, `extra`, then the recipe's."""
    backend_values: dict[str, Any] = {}
    if backend == "unsloth":
        from utils.models import unsloth_grpo_overrides

        backend_values = unsloth_grpo_overrides(recipe.model)  # vLLM colocate, dtype agreement
    elif recipe.model.fast_inference:  # hf: TRL's colocated engine (the plan says so: utils.training._setup.vllm_on_hf)
        backend_values = {"use_vllm": True, "vllm_mode": "colocate",
                          "vllm_gpu_memory_utilization": recipe.model.gpu_memory_utilization}
    kwargs: dict[str, Any] = {**RUN_DEFAULTS, **machine_defaults(hw), **backend_values, **extra, **recipe.training}
    if kwargs.get("use_vllm") and not hw.vllm_installed:
        raise UserError("training.use_vllm: true, but vLLM is not installed here "
                        "(make setup-gpu on a CUDA machine, make setup-vllm for vLLM's CPU build)")
    kwargs["output_dir"] = str(recipe.run_dir)
    return kwargs


def build_grpo_config(recipe: Recipe, hw: Hardware, backend: str, **extra: Any) -> Any:
    """The GRPOConfig for this recipe on this machine; TRL's own consistency errors become UserErrors.

    `extra` holds values we derive (reward weights, progress-bar choice); the recipe's own keys win.
    """
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(recipe, hw, backend, **extra)
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(f"training: TRL rejects these settings: {first_line(err)}") from None


def trl_default_config(output_dir: str, hw: Hardware) -> Any:
    """GRPOConfig as bare TRL would build it on this machine (only the flags TRL requires to start).

    Built outside the launcher's DeepSpeed setting: under it every TrainingArguments points transformers'
    global ZeRO-3 marker (is_deepspeed_zero3_enabled) at its own DeepSpeed config, and this throwaway one,
    once collected, would leave it off. The main process (the one printing the plan) then loaded the model
    without deepspeed.zero.Init while the other ranks waited inside it: ZeRO-3 hung before the first step.
    """
    from trl import GRPOConfig

    with mock.patch.dict(os.environ):
        os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)
        return GRPOConfig(output_dir=output_dir, **({} if hw.cuda else {"use_cpu": True}))


def differences_from_trl(config: Any, hw: Hardware) -> dict[str, tuple[Any, Any]]:
    """{field: (ours, trl_default)} for every field where the effective config differs from TRL's."""
    ours = config.to_dict()
    base = trl_default_config(config.output_dir, hw).to_dict()
    return {k: (v, base.get(k)) for k, v in ours.items() if k not in _DIFF_IGNORED and base.get(k) != v}
