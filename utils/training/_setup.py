"""A run set up once: every decision a training run makes before its model loads.

`set_up_run` reads the machine, picks the backend, validates the recipe, builds the GRPOConfig and the
reward functions, decides how completions are generated and checks every path the run will read.
The plan printout only formats a RunSetup; the trainer only consumes it (torchtune's recipe set-up).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe, RecipeSource, trl_default
from utils.errors import UserError
from utils.models import (
    BackendChoice,
    Hardware,
    check_model_source,
    detect_hardware,
    import_backend,
    local_model_config,
    resolve_backend,
    vllm_runs_on,
)
from utils.training._config import build_grpo_config, check_trl_trains_here
from utils.training._distributed import (
    backend_for_processes,
    check_fsdp_has_gpus,
    is_main_process,
    shards_the_model,
    world_size,
)
from utils.training._dynamic_sampling import check_dynamic_sampling
from utils.training._vllm_server import check_vllm_server, server_url, uses_vllm_server

# Bytes of activations kept per token, hidden unit and layer without gradient checkpointing, under CPU bf16
# autocast: about 65 measured on SmolLM2-135M (peak 5-6 GB with, 10.5 GB without, 16 x ~280 tokens), rounded up.
# fp32 keeps them in 4 bytes, not 2: counted twice (an upper bound, not measured).
ACTIVATION_BYTES = 80

logger = logging.getLogger(__name__)
# How completions are sampled, in the plan's words (RunSetup.generation)
TRANSFORMERS = "transformers generate"


@dataclass(frozen=True)
class RunSetup:
    recipe: Recipe
    hardware: Hardware
    backend: BackendChoice
    config: Any  # trl.GRPOConfig (or Unsloth's subclass, when Unsloth patched TRL)
    reward_funcs: list[Any]
    generation: str  # how completions are sampled, in words
    cpu_generation_copy: str | None  # "bf16" / "fp32": sample from a merged copy of the policy in that precision
    # (utils/training/_cpu_generation); None: from the policy itself (GPU, vLLM, 4-bit, sharded, Unsloth)
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
    standby = recipe.requested_vllm_standby if isinstance(recipe, RecipeSource) else recipe.model.vllm_standby
    import_backend(backend, vllm_standby=standby)  # Unsloth patches TRL on import: before validation (imports TRL)
    recipe = copy.deepcopy(recipe.build() if isinstance(recipe, RecipeSource) else recipe)  # adjusted below
    check_trl_trains_here(backend.name, hw)
    adjustments = (fit_to_machine(recipe, hw, backend.name) + fit_to_gpu(recipe, hw, backend.name)
                   + vllm_on_hf(recipe, hw, backend.name))
    speed, speed_lines = cpu_speed_defaults(recipe, hw, backend.name)
    config = build_grpo_config(recipe, hw, backend.name, reward_weights=reward_weights(recipe), disable_tqdm=True,
                               **speed, **curriculum_defaults(recipe))
    adjustments += speed_lines
    adjustments += bound_prompt_length(recipe, config.max_completion_length)
    check_dynamic_sampling(recipe.dynamic_sampling.enabled, processes, config)
    check_vllm_server(config, hw.cuda)  # server mode: the server answers now, or one line before anything loads
    from utils.rewards import build_reward_functions

    reward_funcs, _ = build_reward_functions(recipe.rewards, recipe.prompt.format, config.max_completion_length,
                                             recipe.rewards_on_error)
    data_source = check_run_paths(recipe)
    vllm_on_cpu = bool(config.use_vllm) and config.vllm_mode == "colocate" and not hw.cuda  # server: elsewhere
    sampling_copy, precision_lines = cpu_precision(recipe, hw, config, backend.name)
    return RunSetup(recipe, hw, backend, config, reward_funcs, _generation(recipe, config, backend.name, sampling_copy),
                    sampling_copy, vllm_on_cpu, adjustments + precision_lines, data_source, processes)


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


def fit_to_gpu(recipe: Recipe, hw: Hardware, backend: str) -> list[str]:
    """Unsloth's vLLM engine (model.fast_inference) off on a GPU the pinned vLLM has no attention backend for (a
    T4), unless `model.strict: true`: generation then goes through Unsloth's transformers path. One plan line."""
    m = recipe.model
    if not (hw.cuda and backend == "unsloth" and m.fast_inference) or m.strict or vllm_runs_on(hw.compute_capability):
        return []
    m.fast_inference = False
    major, minor = hw.compute_capability or (0, 0)
    return [f"model.fast_inference: true -> false ({hw.gpu_name}, compute capability {major}.{minor}: vLLM >= 0.12 "
            "has no attention backend below 8.0; Unsloth generates through transformers instead, slower; "
            "model.strict: true keeps it)"]


def vllm_on_hf(recipe: Recipe, hw: Hardware, backend: str) -> list[str]:
    """model.fast_inference / model.vllm_standby on the hf backend, in the plan: fast_inference becomes TRL's
    colocated vLLM (build_grpo_config maps it) unless training.use_vllm decides; standby is Unsloth's alone."""
    m, lines = recipe.model, []
    if backend != "hf":
        return lines
    if m.fast_inference and "use_vllm" in recipe.training:
        lines.append(f"model.fast_inference: not used on the hf backend (training.use_vllm: "
                     f"{str(recipe.training['use_vllm']).lower()} decides)")
    elif m.fast_inference:
        if not hw.vllm_installed:
            raise UserError("model.fast_inference: true on the hf backend runs TRL's colocated vLLM, but vLLM is not "
                            "installed here (make setup-gpu), or set model.fast_inference: false")
        lines.append(f"model.fast_inference: true -> training.use_vllm: true, vllm_mode: colocate (hf backend: TRL's "
                     f"vLLM engine in this process, {m.gpu_memory_utilization:g} of GPU memory)")
    if m.vllm_standby:
        lines.append("model.vllm_standby: not used on the hf backend (Unsloth's switch; TRL's colocated vLLM "
                     "sleeps between generations with training.vllm_enable_sleep_mode: true)")
    return lines


def cpu_speed_defaults(recipe: Recipe, hw: Hardware, backend: str,
                       ram_bytes: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """GRPOConfig values for a faster CPU step, and a plan line each. Gradient checkpointing (TRL's default)
    recomputes every layer's forward during backward: on CPU that is about a fifth of a SmolLM2 step
    (docs/BENCHMARKS.md, "CPU GRPO step on SmolLM2"). Off where the activations it would keep take at most a
    quarter of this machine's memory, estimated from the model's config.json before anything loads; a recipe
    that sets training.gradient_checkpointing decides for itself."""
    if hw.cuda or backend != "hf" or "gradient_checkpointing" in recipe.training:
        return {}, []
    dims = local_model_config(recipe.model.name)
    if not dims or not {"hidden_size", "num_hidden_layers"} <= dims.keys():
        return {}, []  # a hub id or an unusual config: keep TRL's default
    batch = recipe.training.get("per_device_train_batch_size", trl_default("per_device_train_batch_size"))
    fp32 = not recipe.training.get("bf16", hw.cpu.bf16)  # as build_grpo_config will decide (machine_defaults)
    activations = (int(batch) * recipe.model.max_seq_length * dims["hidden_size"] * dims["num_hidden_layers"]
                   * ACTIVATION_BYTES * (2 if fp32 else 1))
    ram = ram_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if activations > ram / 4:
        return {}, []
    return {"gradient_checkpointing": False}, [
        f"training.gradient_checkpointing: false (CPU: recomputing activations is slower, and keeping them takes "
        f"at most ~{activations / 2**30:.1f} GiB of this machine's {ram / 2**30:.0f}; set it to choose)"]


def bound_prompt_length(recipe: Recipe, max_completion_length: int) -> list[str]:
    """Every prompt is bounded by default: model.max_seq_length minus the completion budget. One huge problem
    must not take the machine down (a 100k-character problem took 23 GB in an evaluation)."""
    filters, seq = recipe.data.filters, recipe.model.max_seq_length
    budget = seq - max_completion_length
    if budget <= 0:
        raise UserError(f"model.max_seq_length ({seq}) leaves no room for a prompt beside "
                        f"training.max_completion_length ({max_completion_length}): raise it or shorten completions")
    asked = filters.max_prompt_tokens
    if asked is not None and asked <= budget:
        return []
    filters.max_prompt_tokens = budget
    if asked is None:
        return [f"data.filters.max_prompt_tokens: {budget} (model.max_seq_length {seq} "
                f"- max_completion_length {max_completion_length}; set it to change the bound)"]
    # Lowered, not refused: the bound is a filter (longer prompts are dropped), so a lower one only keeps fewer
    # problems, while a prompt past it would leave its completion cut off by max_seq_length (Unsloth's vLLM
    # max_model_len) and score zero.
    return [f"data.filters.max_prompt_tokens: {asked} -> {budget} (prompt + training.max_completion_length "
            f"{max_completion_length} must fit model.max_seq_length {seq}; raise that to keep {asked})"]


def curriculum_defaults(recipe: Recipe) -> dict[str, Any]:
    """A curriculum orders the train split (utils.data); TRL's sampler would shuffle that order away."""
    return {"shuffle_dataset": False} if recipe.data.curriculum.by != "none" else {}


def reward_weights(recipe: Recipe) -> list[float]:
    """The weight of each reward, in the recipe's order (a validated recipe holds floats or {weight: ...})."""
    return [float(spec["weight"] if isinstance(spec, dict) else spec) for spec in recipe.rewards.values()]


def check_run_paths(recipe: Recipe) -> str:
    """Every path the run will read exists (the model or adapter and its base, the data source, the pass-rate
    file) and the run folder can be written; the decontamination sets and watched benchmarks it reads from files are read and
    adapted, those it takes from the hub are named (no network). What would fail after minutes of loading
    fails now, with exit code 2. Returns the data source and those sets, described."""
    from utils.data import resolve_source
    from utils.files import check_writable

    check_writable(recipe.run_dir, "output.dir")
    check_model_source(recipe.model.name)
    return "; ".join([resolve_source(recipe.data).describe(), *_check_benchmark_sets(recipe), *_pass_rate_file(recipe)])


def _pass_rate_file(recipe: Recipe) -> list[str]:
    """The pass-rate file the run reads (data.filters.pass_rate, a curriculum by pass rate), when it reads one."""
    from utils.data import find_pass_rate_file, needs_pass_rates

    return [f"pass rates: {find_pass_rate_file(recipe)}"] if needs_pass_rates(recipe) else []


def _check_benchmark_sets(recipe: Recipe) -> list[str]:
    """The decontamination sets and watched benchmarks, each read (a local file) or named (a hub dataset)."""
    from utils.benchmarks import OPENR1_VAL, find_data_dir
    from utils.data import benchmark_source, check_benchmark, resolve_eval_set

    sets = {name: check_benchmark(*resolve_eval_set(name), f"data.filters.decontaminate: '{name}'", gold=False)
            for name in recipe.data.filters.decontaminate}
    data_dir = find_data_dir()
    watched = [e["name"] for e in recipe.eval.watched() if e["name"] != OPENR1_VAL] if recipe.eval.every_steps else []
    evals = {name: check_benchmark(*benchmark_source(name, data_dir, f"eval: {name}"), f"eval: {name}")
             for name in watched}  # openr1-val is the run's own validation split: read with the data
    return [f"{label}: " + ", ".join(f"{name} <- {where}" for name, where in found.items())
            for label, found in (("decontaminate", sets), ("eval", evals)) if found]


def cpu_precision(recipe: Recipe, hw: Hardware, config: Any, backend: str) -> tuple[str | None, list[str]]:
    """The run's CPU precision, decided once from `hw.cpu.bf16` (torch's probe, or GRPO_MATH_CPU_BF16).

    Training autocasts to bf16 where that decision says so (machine_defaults), else stays fp32; it samples from
    a merged copy of the policy in the same precision (faster than TRL's generate through the PEFT wrappers in
    either): hf backend, no 4-bit, no vLLM, and not under FSDP or DeepSpeed (no rank holds the whole model). A
    recipe that sets training.bf16 or model.cpu_bf16_generation is obeyed, with a warning where it asks bf16 of
    a CPU without it. Returns (the copy's precision, "bf16" / "fp32", or None for none; the plan's Adjusted line).
    """
    if hw.cuda:
        return None, []
    m = recipe.model
    copy_set = m.cpu_bf16_generation is not None
    copy_possible = backend == "hf" and not config.use_vllm and not m.load_in_4bit and not shards_the_model()
    bf16_copy = copy_possible and bool(m.cpu_bf16_generation if copy_set else config.bf16)
    copy = ("bf16" if bf16_copy else "fp32") if copy_possible else None
    _warn_bf16_without_native(recipe, hw, copy_possible)
    copy_line = f"model.cpu_bf16_generation: {str(bf16_copy).lower()}" if copy_possible and not copy_set else ""
    if "bf16" in recipe.training:
        return copy, [f"{copy_line} (as the recipe's training.bf16; set it to choose)"] if copy_line else []
    why = ("bf16 is the fastest CPU setting measured where the CPU computes it" if hw.cpu.bf16 else
           "bf16 matmuls would run through PyTorch's scalar GEMM, ~10x slower than fp32")
    decided = ", ".join(filter(None, [f"training.bf16: {str(bool(config.bf16)).lower()}", copy_line]))
    return copy, [f"{decided} ({hw.cpu.describe()}: {why}; set {'them' if copy_line else 'it'} in the recipe "
                       "to choose)"]


def _warn_bf16_without_native(recipe: Recipe, hw: Hardware, copy_possible: bool) -> None:
    """One line, from the main process, when the recipe asks bf16 of a CPU that computes it slowly (the copy:
    only where the run would use one)."""
    copy = recipe.model.cpu_bf16_generation and copy_possible
    asked = [key for key, value in (("training.bf16", recipe.training.get("bf16")),
                                    ("model.cpu_bf16_generation", copy)) if value is True]
    if asked and not hw.cpu.bf16 and is_main_process():
        logger.warning("warning: %s: true, as the recipe says, on a %s: bf16 matmuls run through PyTorch's scalar "
                       "GEMM there, ~10x slower than fp32 (leave %s out to let the machine decide)",
                       " and ".join(asked), hw.cpu.describe(), "them" if len(asked) > 1 else "it")


def _generation(recipe: Recipe, config: Any, backend: str, copy: str | None) -> str:
    if recipe.model.fast_inference and backend == "unsloth":
        return "vLLM (Unsloth's engine)"
    if uses_vllm_server(config):
        return f"vLLM (TRL, server at {server_url(config)}, waiting up to {config.vllm_server_timeout:g} s for it)"
    if config.use_vllm:
        return f"vLLM (TRL, {config.vllm_mode})"
    if copy:
        return f"{copy} merged copy of the policy (CPU)"
    return TRANSFORMERS
