"""Pass rates of a recipe's starting model on its training problems: k samples each, as training samples them.

    python scripts/pass_rate.py RECIPE [--k 8] [--set key=value ...] [--limit N] [--out FILE.jsonl]
                                [--batch-size N] [--backend auto|hf|vllm]

The problems are the recipe's train split after its filters, in its prompt format; the samples use its
training temperature, top_p and max_completion_length, through vLLM where installed, else batched
transformers. One line per problem goes to .cache/pass_rates/KEY-kK.jsonl (KEY: the model, data, prompt and
sampling), where `data.filters.pass_rate: [low, high]` and `data.curriculum: {by: pass_rate}` find it; a
histogram PNG lies beside it. Rerun the same command after an interruption to continue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import run_main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--k", type=int, default=8, help="samples per problem (default 8)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, as grpo_train.py does (repeatable)")
    parser.add_argument("--limit", type=int, help="the first N training problems only")
    parser.add_argument("--out", help="the pass-rate file (default: .cache/pass_rates/KEY-kK.jsonl, which the "
                        "recipe finds; elsewhere, name it in data.filters.pass_rate_file)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="sequences per transformers generate() call, k per problem (default 64)")
    parser.add_argument("--backend", default="auto", help="auto (vLLM where installed), hf or vllm")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from utils.config import load_recipe
    from utils.errors import UserError
    from utils.training import PassRateJob, PassRateRequest

    if args.out and not args.out.endswith(".jsonl"):
        raise UserError(f"--out: {args.out}: give a .jsonl file (its .json and .png go beside it)")
    request = PassRateRequest(k=args.k, limit=args.limit, out=Path(args.out) if args.out else None,
                              batch_size=args.batch_size, backend=args.backend, progress=not args.no_progress)
    job = PassRateJob(load_recipe(args.recipe, args.overrides), request)
    print(f"pass rates of {job.spec.label}, k={request.k} -> {job.path}", flush=True)
    try:
        summary = job.run()
    except KeyboardInterrupt:
        print(f"\nproblems scored so far are kept in {job.path}: run the same command again to continue",
              file=sys.stderr)
        raise
    print(summary.line())
    print(f"file: {summary.path}\nhistogram: {summary.png}")
    return 0


if __name__ == "__main__":
    run_main(main)
