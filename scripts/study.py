"""The retention study: stages chained, each evaluated, and what each stage kept and lost.

    python scripts/study.py recipes/studies/smollm2_cpu.yaml [--dry-run] [--resume] [--force]

Each stage is a recipe plus overrides, trained from the previous stage's model; the benchmarks are evaluated
before the first stage and after every stage. Everything goes to checkpoints/studies/NAME/ (the study file's
output_dir and name): study.resolved.yaml, a run folder per stage, evals/afterK/, matrix.csv, summary.json,
report.md, plots/. Ctrl-C or SIGTERM stops it (a stage at the end of its step, with a checkpoint); --resume
continues without redoing a finished stage or evaluation.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import run_main
from utils.errors import StopRequested


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", metavar="STUDY.yaml", help="study file (see recipes/studies/)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every stage recipe, model and benchmark and print the plan; run nothing")
    parser.add_argument("--resume", action="store_true",
                        help="continue the study in its folder (with --force: even though the study file changed)")
    parser.add_argument("--force", action="store_true", help="remove the study folder's earlier study and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs and CI)")
    return parser.parse_args(argv)


def rerun_command(args: argparse.Namespace, *extra: str) -> str:
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), sys.argv[0] or "scripts/study.py", args.study, *extra])


def stopped(name: str, where: str, folder: Path, args: argparse.Namespace) -> int:
    kept = folder.is_dir() and any(folder.iterdir())
    print(f"\nstopped by {name}{f' during {where}' if where else ''}"
          + (f"; finished stages and evaluations are kept in {folder}" if kept else "; nothing was started"))
    print(f"continue with: {rerun_command(args, '--resume') if kept else rerun_command(args)}")
    return 128 + signal.Signals[name].value if name in signal.Signals.__members__ else 130


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from utils.study import check_study, format_plan, read_study, run_study

    study = read_study(args.study)
    try:
        plan = check_study(study)  # every recipe, model and benchmark: one line and exit 2 before a model loads
        print(format_plan(plan), flush=True)
        if args.dry_run:
            print("dry run: every stage recipe, starting model and benchmark checked; nothing trained")
            return 0
        outcome = run_study(plan, resume=args.resume, force=args.force, progress=not args.no_progress)
    except StopRequested as stop:
        return stopped(str(stop), "", study.folder, args)
    except KeyboardInterrupt:
        return stopped("SIGINT", "", study.folder, args)
    if outcome.stopped_by:
        return stopped(outcome.stopped_by, outcome.stopped_in, outcome.folder, args)
    print_summary(outcome.summary, outcome.folder)
    return 0


def print_summary(summary: dict, folder: Path) -> None:
    for chain in summary["chains"]:
        result = chain["retention"]
        print(f"\n== {chain['label'] or summary['study']}: pass@1 % after each stage")
        for k, row in enumerate(result["rows"]):
            cells = [f"{b} {100 * c['pass@1']:.1f}" if (c := result["matrix"][b][k]) else f"{b} -"
                     for b in result["benchmarks"]]
            print(f"  {k}: {row:<14} " + "  ".join(cells))
        for b, f in result["forgetting"].items():
            if f is not None:
                low, high = f["ci95"]
                noise = ", within noise" if low <= 0 <= high else ""
                print(f"  forgetting {b}: {100 * f['value']:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]{noise}")
        bwt = result["backward_transfer"]
        if bwt is not None:
            print(f"  backward transfer: {100 * bwt['value']:+.1f} points")
    from utils.study import MATRIX, PLOTS, REPORT

    print(f"\nreport: {folder / REPORT}; matrix: {folder / MATRIX}; plots: {folder / PLOTS}")


if __name__ == "__main__":
    run_main(main)
