"""Seconds per GRPO step at 1 and 2 processes: grpo_train.py under `accelerate launch` (torchrun, gloo on CPU).

Each process keeps the recipe's per-process batch (4 completions of one prompt), so 2 processes do twice the
work per step: the table shows step time and completions per second. On a 2-core machine the two
processes share the cores (OMP_NUM_THREADS=1 each; the 1-process run gets both), so this measures the cost
of the machinery (gradient all-reduce, gathers, the per-step stop agreement), not a speed-up that needs
more cores or GPUs. The first step of each run (warm-up) is dropped; the median of the rest is reported.

    python bench/bench_distributed.py [--steps 10] [--smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import ROOT, write_section

from utils.runs import METRICS  # report put the repository on sys.path

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
SMOLLM2 = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(model: Path, processes: int, steps: int, out: Path) -> list[float]:
    """Step times (s) of one grpo_train.py run launched with `processes` processes."""
    threads = str(max(1, (os.cpu_count() or 1) // processes))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
              "--mixed_precision", "no", "--dynamo_backend", "no", "--num_machines", "1"]
    if processes > 1:
        launch += ["--multi_gpu", "--main_process_port", str(free_port())]
    sets = [f"model.name={model}", f"output.dir={out}", f"training.max_steps={steps}", "training.save_steps=1000",
            "eval.every_steps=0", "output.plots=false", "output.completions_every=0"]
    command = [*launch, "scripts/grpo_train.py", str(SMOKE), "--no-progress", "--force",
               *[part for s in sets for part in ("--set", s)]]
    env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{processes} processes failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "smoke_cpu" / METRICS).read_text().splitlines()]
    return [r["step_time_s"] for r in records if "loss" in r][1:]


def measure(name: str, model: Path, steps: int) -> list[str]:
    rows = []
    base = None
    for processes in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            times = run(model, processes, steps, Path(tmp))
        median = statistics.median(times)
        completions = 4 * processes
        base = base or median
        rows.append(f"| {name} | {processes} | {completions} | {median:.2f} s | {min(times):.2f}-{max(times):.2f} s "
                    f"| {completions / median:.1f} | {median / base:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--smollm2", action="store_true", help=f"also SmolLM2-135M ({SMOLLM2}; minutes)")
    args = parser.parse_args()
    from utils.models import build_tiny_qwen2

    with tempfile.TemporaryDirectory() as tmp:
        rows = measure("tiny Qwen2 (random)", build_tiny_qwen2(Path(tmp) / "tiny"), args.steps)
        if args.smollm2 and SMOLLM2.is_dir():
            rows += measure("SmolLM2-135M-Instruct", SMOLLM2, max(3, args.steps // 3))
    body = "\n".join([
        "grpo_train.py (smoke recipe: LoRA r=8, 4 completions of 32 tokens per process per step, evaluation off) "
        "under `accelerate launch`, 1 process vs 2 (torchrun, gloo). Per-process batch fixed: 2 processes train "
        "twice the completions per step. Median step time over the steps after the first.",
        "",
        "| model | processes | completions / step | step time (median) | range | completions / s | step time vs 1 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "On this 2-core machine both processes share the cores, so this is the cost of the multi-process "
        "machinery, not a speed-up (that needs a core or GPU per process). Step times on this machine vary "
        f"by ~15% run to run. Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores.",
    ])
    command = "python bench/bench_distributed.py" + (" --smollm2" if args.smollm2 else "")
    print(write_section("distributed", "Multi-process GRPO (accelerate, CPU)", command, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
