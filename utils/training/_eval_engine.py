"""In-training evaluation through the run's own vLLM engine (TRL's colocate mode), holding the current policy.

Why: a run that generates with vLLM already has an engine beside the policy, many times faster than
transformers' generate on the same problems (docs/BENCHMARKS.md, "Evaluation: vLLM's CPU build"); evaluating
through generate as well would be the slow path twice over. The engine holds the weights of the last
generation, so they are pushed first, exactly as TRL does before it generates; TRL then skips its own push
for this step (nothing changed in between).

Not used (generate is): server mode (the server is shared and busy with training prompts), sleep mode (the
engine's weights are discarded between generations), tensor parallelism (the ranks of a group would have to
generate the same prompts together), and Unsloth's engine (it shares the base weights with the policy and
applies the trained LoRA per request, through Unsloth's own generate: the caller leaves it out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def colocated_eval_engine(trainer: Any) -> Callable[[], Any] | None:
    """A function returning a VllmGenerator over the trainer's colocated engine with the current weights, or
    None where the run has no engine evaluation can use (see the module's note)."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or getattr(generation, "mode", None) != "colocate" or not hasattr(generation, "llm"):
        return None
    if getattr(generation, "enable_sleep_mode", False) or getattr(generation, "tensor_parallel_size", 1) > 1:
        return None
    from utils.evaluation import VllmGenerator

    def current_engine() -> VllmGenerator:
        step = trainer.state.global_step
        if getattr(trainer, "_last_loaded_step", None) != step:
            generation.sync_weights()
            trainer._last_loaded_step = step  # TRL's own marker: its next generation needs no push
        return VllmGenerator(generation.llm, trainer.processing_class)

    return current_engine
