"""`make gpu-check`: what a lent GPU with a few minutes and no model hub can tell us, in one command.

1. the `gpu` tests (tests/training/test_gpu.py: Unsloth 4-bit + LoRA, grpo_train.py picking Unsloth, bitsandbytes QLoRA on the
   hf backend, vLLM where installed);
2. N GRPO steps through grpo_train.py on a random model of Qwen2.5-0.5B's shapes (scripts/make_tiny_model.py
   --size qwen2.5-0.5b), once with Unsloth 4-bit + LoRA and once with the hf backend (transformers + PEFT,
   bitsandbytes 4-bit + LoRA): seconds per step and peak GPU memory from the run's metrics.jsonl;
3. written to docs/BENCHMARKS.md ("gpu-check") with the card, driver and library versions.

    python bench/gpu_check.py [--steps 6] [--skip-tests]

Without a CUDA GPU: one line and exit 2. Not a bench_*.py: `make bench` runs on CPU machines too.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import ROOT, write_section

from utils.models import QWEN2_SHAPES, build_tiny_qwen2, query_gpus

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "unsloth",
            "unsloth_zoo", "vllm", "xformers", "triton")
# Each run: 2 prompts x 8 completions of up to 128 tokens, a random model (completions run to full length).
RUN_SETTINGS = ["training.num_generations=8", "training.per_device_train_batch_size=8",
                "training.gradient_accumulation_steps=2", "training.max_completion_length=128",
                "model.max_seq_length=512", "model.fast_inference=false", "model.load_in_4bit=true",
                "eval.every_steps=0", "training.save_steps=1000"]
BACKENDS = (("unsloth", "Unsloth 4-bit + LoRA r=8"), ("hf", "hf: transformers + PEFT, bitsandbytes 4-bit + LoRA r=8"))


def cuda_problem() -> str | None:
    """One line when this machine cannot run the check (no GPU, or a torch without CUDA)."""
    if not query_gpus():
        return "make gpu-check needs a CUDA GPU: nvidia-smi lists none here (run it on a GPU machine after make setup-gpu)"
    import torch

    if not torch.cuda.is_available():
        return (f"make gpu-check needs a CUDA GPU: torch {torch.__version__} sees none (a CPU build, or a driver it "
                "cannot use: python scripts/check_gpu.py says which)")
    return None


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def run_gpu_tests() -> str:
    """The gpu tests' summary line (and the skip reasons pytest prints with -rs)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/training/test_gpu.py", "-q", "-rs", "-p",
                             "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED") or " passed" in line
             or " failed" in line or " error" in line]
    return "\n".join([f"`pytest -m gpu` exit {result.returncode} in {time.perf_counter() - started:.0f} s:", "",
                      *[f"    {line}" for line in lines[-8:]]])


def grpo_steps(model: Path, backend: str, steps: int, out: Path) -> tuple[str, str]:
    """(s/step median after the first step, peak GPU memory) of `steps` GRPO steps on this backend, or the error."""
    run_name = f"gpu-check-{backend}"
    command = [sys.executable, "scripts/grpo_train.py", "recipes/smoke_cpu.yaml", "--no-progress", "--force",
               *[arg for value in [f"model.name={model}", f"model.backend={backend}", f"training.max_steps={steps}",
                                   f"output.dir={out}", f"output.run_name={run_name}", *RUN_SETTINGS]
                 for arg in ("--set", value)]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    metrics = out / run_name / "metrics.jsonl"
    if result.returncode != 0 or not metrics.is_file():
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return "failed", f"exit {result.returncode}: {tail[:200]}"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows = [row for row in rows if "step_time_s" in row]
    timed = [row["step_time_s"] for row in rows[1:]] or [row["step_time_s"] for row in rows]
    peak = max(row.get("peak_memory_mib", 0) for row in rows)
    return f"{statistics.median(timed):.2f}", f"{peak / 1024:.1f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per backend (default: %(default)s)")
    parser.add_argument("--skip-tests", action="store_true", help="only the GRPO steps")
    args = parser.parse_args(argv)
    problem = cuda_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    gpu = query_gpus()[0]
    tests = "`pytest -m gpu`: skipped (--skip-tests)" if args.skip_tests else run_gpu_tests()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_qwen2(Path(tmp) / "qwen2.5-0.5b-shaped", **QWEN2_SHAPES["qwen2.5-0.5b"])
        for backend, label in BACKENDS:
            seconds, memory = grpo_steps(model, backend, args.steps, Path(tmp) / "runs")
            rows.append(f"| {label} | {args.steps} | {seconds} | {memory} |")
    body = "\n".join([
        tests, "",
        f"GRPO steps through grpo_train.py (recipes/smoke_cpu.yaml with {' '.join(RUN_SETTINGS)}) on a random model "
        "of Qwen2.5-0.5B's shapes with the tiny tokenizer's vocabulary (so smaller logits than the real model's); "
        "median seconds per step after the first; peak GPU memory from the CUDA allocator (metrics.jsonl).", "",
        "| backend | steps | s/step | peak GPU memory |", "|---|---|---|---|", *rows,
    ])
    write_section("gpu-check", "make gpu-check: GPU tests and GRPO steps on a Qwen2.5-0.5B-shaped model",
                  "make gpu-check", body, details={"GPU": gpu.describe(), "versions": versions()})
    print(body)
    return 1 if any("failed" in row for row in rows) or " failed" in tests else 0


if __name__ == "__main__":
    sys.exit(main())
