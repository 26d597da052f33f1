"""A run set up once: every decision a training run makes before its model loads.

`set_up_run` reads the machine, picks the backend, validates the recipe, builds the GRPOConfig and the
reward functions, decides how completions are generated and checks every path the run will read.
The plan printout only formats a RunSetup; the trainer only consumes it (torchtune's recipe set-up).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe, RecipeSource
from utils.errors import UserError
from utils.models import (
    BackendChoice,
    Hardware,
    check_model_source,
    detect_hardware,
    import_backend,
    local_model_config,
    resolve_backend,
)
from utils.training._config import build_grpo_config, check_trl_trains_here
from utils.training._distributed import (
    backend_for_processes,
    check_fsdp_has_gpus,
    shards_the_model,
    world_size,
)
from utils.training._vllm_server import check_vllm_server, server_url, uses_vllm_server

# Bytes of activations kept per token, hidden unit and layer without gradient checkpointing, under CPU bf16
# autocast: about 65 measured on SmolLM2-135M (peak 5-6 GB with, 10.5 GB without, 16 x ~280 tokens), rounded up.
ACTIVATION_BYTES = 80


@dataclass(frozen=True)
class RunSetup:
    recipe: Recipe
    hardware: Hardware
    backend: BackendChoice
    config: Any  # trl.GRPOConfig (or Unsloth's subclass, when Unsloth patched TRL)
    reward_funcs: list[Any]
    generation: str  # how completions are sampled, in words
    cpu_bf16_generation: bool  # sample from a bf16 merged copy of the policy (utils/training/_cpu_generation)
    vllm_on_cpu: bool  # TRL's colocated vLLM engine on vLLM's CPU build (utils/training/_vllm_cpu)
    adjustments: list[str]  # recipe values changed for this machine or bounded by default, each with why
    data_source: str  # where the rows come from, in words
    processes: int = 1  # training processes (accelerate launch): the world size

    @property
    def run_dir(self) -> Path:
        return self.recipe.run_dir


def set_up_run(recipe: Recipe | RecipeSource, hw: Hardware | None = None) -> RunSetup:
    """Build the run's set-up from a recipe (or a recipe as read, not yet validated) on this machine.

    Loads no model and no data: `--dry-run` prints it, and every user mistake it can see fails here.
    """
    hw = hw or detect_hardware()
    requested = recipe.requested_backend if isinstance(recipe, RecipeSource) else recipe.model.backend
    processes = world_size()
    check_fsdp_has_gpus(hw.cuda)
    backend = backend_for_processes(resolve_backend(requested, hw), requested, processes)
    import_backend(backend)  # Unsloth patches TRL on import: before validation, which imports TRL
    recipe = copy.deepcopy(recipe.build() if isinstance(recipe, RecipeSource) else recipe)  # adjusted below
    check_trl_trains_here(backend.name, hw)
    adjustments = fit_to_machine(recipe, hw, backend.name)
    speed, speed_lines = cpu_speed_defaults(recipe, hw, backend.name)
    config = build_grpo_config(recipe, hw, backend.name, reward_weights=reward_weights(recipe), disable_tqdm=True,
                               **speed)
    adjustments += speed_lines
    adjustments += bound_prompt_length(recipe, config.max_completion_length)
    check_vllm_server(config, hw.cuda)  # server mode: the server answers now, or one line before anything loads
    from utils.rewards import build_reward_functions

    reward_funcs, _ = build_reward_functions(recipe.rewards, recipe.prompt.format, config.max_completion_length,
                                             recipe.rewards_on_error)
    data_source = check_run_paths(recipe)
    vllm_on_cpu = bool(config.use_vllm) and config.vllm_mode == "colocate" and not hw.cuda  # server: elsewhere
    bf16_copy = _uses_cpu_bf16_generation(recipe, hw, config, backend.name)
    return RunSetup(recipe, hw, backend, config, reward_funcs, _generation(recipe, config, backend.name, bf16_copy),
                    bf16_copy, vllm_on_cpu, adjustments, data_source, processes)


def fit_to_machine(recipe: Recipe, hw: Hardware, backend: str) -> list[str]:
    """Turn off GPU-only speed options that would slow this machine down (a GPU recipe run on a CPU), unless
    the recipe says `model.strict: true`. Returns a line per change, for the plan."""
    m = recipe.model
    if hw.cuda or backend != "hf" or m.strict:
        return []
    changes = []
    if m.load_in_4bit:
        m.load_in_4bit = False
        changes.append("model.load_in_4bit: true -> false (no CUDA GPU: bitsandbytes 4-bit on CPU is slower, "
                       "about 25 s vs 14-18 s per step on SmolLM2; model.strict: true keeps it)")
    if m.fast_inference:
        m.fast_inference = False
        changes.append("model.fast_inference: true -> false (Unsloth's vLLM engine needs a CUDA GPU; "
                       "training.use_vllm picks vLLM's CPU build)")
    return changes


def cpu_speed_defaults(recipe: Recipe, hw: Hardware, backend: str,
                       ram_bytes: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """GRPOConfig values for a faster CPU step, and a plan line each. Gradient checkpointing (TRL's default)
    recomputes every layer's forward during backward: on CPU that is about a fifth of a SmolLM2 step
    (docs/BENCHMARKS.md, "cpu-step"). Off where the activations it would keep take at most a quarter of
    this machine's memory, estimated from the model's config.json before anything loads; a recipe that sets
    training.gradient_checkpointing decides for itself."""
    if hw.cuda or backend != "hf" or "gradient_checkpointing" in recipe.training:
        return {}, []
    dims = local_model_config(recipe.model.name)
    if not dims or not {"hidden_size", "num_hidden_layers"} <= dims.keys():
        return {}, []  # a hub id or an unusual config: keep TRL's default
    batch = recipe.training.get("per_device_train_batch_size", _trl_default("per_device_train_batch_size"))
    activations = (int(batch) * recipe.model.max_seq_length * dims["hidden_size"] * dims["num_hidden_layers"]
                   * ACTIVATION_BYTES)
    ram = ram_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if activations > ram / 4:
        return {}, []
    return {"gradient_checkpointing": False}, [
        f"training.gradient_checkpointing: false (CPU: recomputing activations is slower, and keeping them takes "
        f"at most ~{activations / 2**30:.1f} GiB of this machine's {ram / 2**30:.0f}; set it to choose)"]


def _trl_default(field: str) -> Any:
    from trl import GRPOConfig

    return GRPOConfig.__dataclass_fields__[field].default


def bound_prompt_length(recipe: Recipe, max_completion_length: int) -> list[str]:
    """Every prompt is bounded by default: model.max_seq_length minus the completion budget. One huge problem
    must not take the machine down (a 100k-character problem took 23 GB in an evaluation)."""
    filters = recipe.data.filters
    if filters.max_prompt_tokens is not None:
        return []
    budget = recipe.model.max_seq_length - max_completion_length
    if budget <= 0:
        raise UserError(f"model.max_seq_length ({recipe.model.max_seq_length}) leaves no room for a prompt beside "
                        f"training.max_completion_length ({max_completion_length}): raise it or shorten completions")
    filters.max_prompt_tokens = budget
    return [f"data.filters.max_prompt_tokens: {budget} (model.max_seq_length {recipe.model.max_seq_length} "
            f"- max_completion_length {max_completion_length}; set it to change the bound)"]


def reward_weights(recipe: Recipe) -> list[float]:
    """The weight of each reward, in the recipe's order (a validated recipe holds floats or {weight: ...})."""
    return [float(spec["weight"] if isinstance(spec, dict) else spec) for spec in recipe.rewards.values()]


def check_run_paths(recipe: Recipe) -> str:
    """Every path the run will read exists (the model or adapter and its base, the data source, the
    decontamination sets) and the run folder can be written. What would fail after minutes of loading
    fails now, with exit code 2. Returns the data source, described."""
    from utils.data import resolve_eval_set, resolve_source
    from utils.training._run_dir import check_writable

    check_writable(recipe.run_dir)
    check_model_source(recipe.model.name)
    source = resolve_source(recipe.data)
    for name in recipe.data.filters.decontaminate:
        resolve_eval_set(name)
    return source.describe()


def _uses_cpu_bf16_generation(recipe: Recipe, hw: Hardware, config: Any, backend: str) -> bool:
    """CPU, hf backend, bf16 training, no 4-bit, no vLLM: sample from a bf16 merged copy (faster than TRL's
    fp32 generate through the PEFT wrappers). Not under FSDP or DeepSpeed: no rank holds the whole model."""
    m = recipe.model
    return (m.cpu_bf16_generation and not hw.cuda and backend == "hf" and bool(config.bf16)
            and not config.use_vllm and not m.load_in_4bit and not shards_the_model())


def _generation(recipe: Recipe, config: Any, backend: str, bf16_copy: bool) -> str:
    if recipe.model.fast_inference and backend == "unsloth":
        return "vLLM (Unsloth's engine)"
    if uses_vllm_server(config):
        return f"vLLM (TRL, server at {server_url(config)}, waiting up to {config.vllm_server_timeout:g} s for it)"
    if config.use_vllm:
        return f"vLLM (TRL, {config.vllm_mode})"
    if bf16_copy:
        return "bf16 merged copy of the policy (CPU)"
    return "transformers generate"
