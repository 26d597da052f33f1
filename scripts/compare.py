"""Retention report: several evaluated models side by side, against the first.

    python scripts/compare.py BASE STAGE1 STAGE2 ... [--out DIR]

Each argument is an evaluation folder (evaluate.py --out), or a run, checkpoint or model whose default
evaluation folder exists. Evaluations of one benchmark must cover the same problems: --intersection
compares only the problems they share (and says so). Writes report.md (every benchmark, deltas with 95% intervals, problems forgotten
and learned with examples), comparison.json and retention.png (grouped bars) to --out
(default checkpoints/compare/A_vs_B...).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_main
from utils.files import check_writable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", metavar="RUN_OR_EVAL", help="evaluation folders, runs or checkpoints")
    parser.add_argument("--out", help="report folder (default checkpoints/compare/A_vs_B...)")
    parser.add_argument("--intersection", action="store_true",
                        help="evaluations of different problems (another --limit): compare only the problems they share "
                        "(default: refuse)")
    return parser.parse_args(argv)


def default_out(targets: list[str]) -> Path:
    names = [re.sub(r"[^\w.-]+", "_", Path(t).name or t).strip("_") for t in targets]
    return Path("checkpoints") / "compare" / "_vs_".join(names)[:120]


def _change(row: dict) -> str:
    low, high = (100 * x for x in row["delta_ci95"])
    noise = ", within noise" if low <= 0 <= high else ""
    return f" ({100 * row['delta']:+.1f} [{low:+.1f}, {high:+.1f}]{noise})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_stop(rerun_command(*(sys.argv[1:] if argv is None else argv)))
    from utils.evaluation import intersection_notes, precision_notes, write_comparison

    out = Path(args.out) if args.out else default_out(args.targets)
    check_writable(out, "--out")
    result = write_comparison(args.targets, out, args.intersection)
    for note in intersection_notes(result) + precision_notes(result):
        print(note)
    for name, rows in result["benchmarks"].items():
        cells = [f"{r['model']} {100 * r['pass@1']:.1f}%" + (_change(r) if "delta" in r else "")
                 for r in rows if r is not None]
        print(f"{name}: " + ", ".join(cells))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    run_main(main)
