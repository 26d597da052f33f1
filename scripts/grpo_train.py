"""GRPO fine-tuning driven by a YAML recipe.

    python scripts/grpo_train.py recipes/subset10k.yaml [--set key=value ...] [--dry-run] [--resume] [--force]

The run folder is output.dir/run_name (default checkpoints/<recipe name>/). Ctrl-C or SIGTERM finishes
the current step, saves a checkpoint and exits 0; `--resume` continues from the last complete checkpoint.
A fault mid-run (a full disk, a failing reward) is one line, exit 2, with the command that continues.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import run_main
from utils.config import read_recipe
from utils.errors import UserError
from utils.runs import BEST
from utils.training import (
    RunFailed,
    TrainOutcome,
    end_process_group,
    format_plan,
    is_main_process,
    run_training,
    set_up_run,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set training.learning_rate=1e-5 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="validate the recipe and print the plan; train nothing")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last complete checkpoint")
    parser.add_argument("--force", action="store_true", help="replace an existing run folder and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs and CI)")
    return parser.parse_args(argv)


def rerun_command(args: argparse.Namespace, *extra: str) -> str:
    """This command as it can be pasted back: the same interpreter (the venv's), recipe and every --set."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    sets = [part for override in args.overrides for part in ("--set", override)]
    return shlex.join([str(python), sys.argv[0] or "scripts/grpo_train.py", args.recipe, *sets, *extra])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup = set_up_run(read_recipe(args.recipe, args.overrides))
    main_process = is_main_process()  # under `accelerate launch`, one process speaks for the run
    if main_process:
        print(format_plan(setup), flush=True)
    if args.dry_run:
        return 0
    try:
        outcome = run_training(setup, resume=args.resume, force=args.force, progress=not args.no_progress)
    except RunFailed as failed:  # a full disk, a failing reward: one line that ends in the command to go on
        command = rerun_command(args, "--resume") if failed.checkpoint else rerun_command(args)
        raise UserError(failed.with_command(command)) from None
    end_process_group()  # every rank is done: closed now, not by the interpreter's exit
    if main_process:
        report(outcome, args)
    return 0


def report(outcome: TrainOutcome, args: argparse.Namespace) -> None:
    if outcome.stopped_by and outcome.last_checkpoint:
        print(f"stopped by {outcome.stopped_by} at step {outcome.global_step}; checkpoint: {outcome.last_checkpoint}")
        print(f"continue with: {rerun_command(args, '--resume')}")
    elif outcome.stopped_by:
        print(f"stopped by {outcome.stopped_by} before the first checkpoint; start again with: {rerun_command(args)}")
    else:
        print(f"done: {outcome.global_step} steps; last checkpoint: {outcome.last_checkpoint}")
    if outcome.best_accuracy is not None:
        print(f"best validation accuracy {outcome.best_accuracy:.1%}: {outcome.run_dir / BEST}")
    print(f"run folder: {outcome.run_dir}")

if __name__ == "__main__":
    run_main(main)
