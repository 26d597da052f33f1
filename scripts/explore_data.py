"""Explore a dataset as a training run would load it: schema, split sizes, sample prompts, distributions,
answer kinds and parse rate, length percentiles, what each filter removes. Writes a markdown report and
PNG charts to a folder.

    python scripts/explore_data.py recipes/subset10k.yaml            # the recipe's data, filters, prompt
    python scripts/explore_data.py ../shared/data/gsm8k/train.jsonl  # a file, folder or hub id (default filters)
    python scripts/explore_data.py data/openr1_sample.jsonl --set data.filters.min_correctness_count=2
    python scripts/explore_data.py synthetic --set data.kind=fractions --set data.level=3   # generated problems
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_main
from utils.config import Recipe, load_recipe, parse_override, sections_from_dict, set_path
from utils.errors import UserError, first_line
from utils.files import check_writable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="RECIPE_OR_SOURCE",
                        help="a recipe (.yaml), or a dataset: .jsonl/.json/.parquet file, folder, or hub id")
    parser.add_argument("--out", help="report folder (default: checkpoints/explore/NAME)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a data./prompt. value, e.g. --set data.filters.dedupe=false (repeatable)")
    parser.add_argument("--tokenizer", help="local tokenizer folder for token lengths and the prompt-token filter "
                        "(default: the recipe's model.name when it is a local folder)")
    parser.add_argument("--samples", type=int, default=3, help="sample prompts to show (default 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def _recipe(args: argparse.Namespace) -> Recipe:
    if args.target.endswith((".yaml", ".yml")):
        return load_recipe(args.target, args.overrides)
    # A bare dataset: default filters, no held-out split unless asked (small files have few rows).
    raw: dict = {"data": {"dataset": args.target, "validation": 0}}
    for override in args.overrides:
        key, value = parse_override(override)
        if not key.startswith(("data.", "prompt.")):
            raise UserError(f"--set {override}: only data.* and prompt.* apply to a bare dataset (or give a recipe)")
        set_path(raw, key, value, where=f"--set {override}")
    return sections_from_dict(raw, where="explore_data")


def _tokenizer(args: argparse.Namespace, recipe: Recipe):
    path = args.tokenizer
    if path is None and args.target.endswith((".yaml", ".yml")) and Path(recipe.model.name).is_dir():
        path = recipe.model.name
    if path is None:
        return None
    if not Path(path).is_dir():
        raise UserError(f"--tokenizer {path}: not a local folder (no model hub here)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises OSError/ValueError with long texts
        raise UserError(f"{path}: cannot load a tokenizer ({first_line(err)})") from None


def _report_name(target: str, recipe: Recipe) -> str:
    """The default report folder's name: the target's last real path part, without a file suffix.

    `../shared/data/gsm8k` -> gsm8k, `recipes/x.yaml` -> x, `open-r1/OpenR1-Math-220k` -> OpenR1-Math-220k;
    generated problems by what they are: `synthetic --set data.kind=word` -> synthetic-word-level2.
    """
    if target == recipe.data.dataset == "synthetic":
        level = recipe.data.level
        return f"synthetic-{recipe.data.kind}-level{'-'.join(map(str, level)) if isinstance(level, list) else level}"
    path = Path(os.path.normpath(Path(target).expanduser().absolute()))  # "../x/" and "." name real folders
    name = path.stem if path.suffix.lower() in (".yaml", ".yml", ".jsonl", ".json", ".parquet") else path.name
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "data"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_stop(rerun_command(*(sys.argv[1:] if argv is None else argv)))  # a report is written at the end
    recipe = _recipe(args)
    out = Path(args.out) if args.out else Path("checkpoints") / "explore" / _report_name(args.target, recipe)
    check_writable(out, "--out")
    tokenizer = _tokenizer(args, recipe)
    from utils.data import explore

    exp = explore(recipe.data, recipe.prompt, out, tokenizer=tokenizer, samples=args.samples,
                  title=args.target, progress=not args.no_progress)
    r = exp.report
    print(f"{exp.source}: {exp.format}, {exp.rows_loaded} rows; gold answers parse rate "
          f"{100 * (exp.parse_rate or 0):.1f}%")
    for step in exp.sequential:
        print("  " + step.line())
    if r is not None:
        print(f"train {r.train_rows}, validation {r.validation_rows} ({r.validation_from})")
    print(f"report: {out / 'report.md'} ({len(exp.charts)} charts)")
    return 0


if __name__ == "__main__":
    run_main(main)
