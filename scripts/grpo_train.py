"""GRPO fine-tuning driven by a YAML recipe.

    python scripts/grpo_train.py recipes/subset10k.yaml [--set key=value ...] [--dry-run]
"""

from __future__ import annotations

import argparse

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import run_main
from utils.errors import UserError
from utils.plan import format_plan
from utils.recipe import load_recipe


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set training.learning_rate=1e-5 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="validate the recipe and print the plan; train nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    print(format_plan(recipe))
    if args.dry_run:
        return 0
    raise UserError("training is not built yet: use --dry-run to validate a recipe and see its plan")


if __name__ == "__main__":
    run_main(main)
