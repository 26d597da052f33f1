"""Evaluate a model on math benchmarks: per-sample JSONL, summary.json and a markdown table, resumable.

    python scripts/evaluate.py MODEL --bench gsm8k,math500 [--limit N] [--samples K] [--data-dir DIR] [--out DIR]

MODEL: a hub id, a local model folder, a LoRA adapter folder (loaded on its base), or a run folder (its
best/, else its last complete checkpoint). Benchmarks: gsm8k, math500, aime24, amc23, openr1-val (the
validation split of the run's recipe), or a .jsonl/.json/.parquet file or folder. Which column is the
problem and which the answer is told from the names and what the columns hold, printed as
`NAME: columns: problem <- question, answer <- answer`; --columns problem=COL,answer=COL says it instead.
Ctrl-C or SIGTERM keeps the samples so far (exit 130 / 143) and prints the command that continues; --force
starts over. One evaluation at a time writes to an output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_main
from utils.formats import DEFAULT_FORMAT, FORMAT_NAMES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="hub id, model folder, LoRA adapter folder or run folder")
    parser.add_argument("--bench", required=True, help="comma-separated benchmark names or files, e.g. gsm8k,math500")
    parser.add_argument("--limit", type=int, help="first N problems of each benchmark")
    parser.add_argument("--samples", type=int, default=1, help="samples per problem (1: greedy; K: pass@k, maj@k)")
    parser.add_argument("--temperature", type=float, default=0.6, help="sampling temperature when --samples > 1")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--max-new-tokens", type=int, help="completion budget (default: per benchmark)")
    parser.add_argument("--prompt-format", metavar="FORMAT",
                        help=f"{' or '.join(FORMAT_NAMES)} (default: the run's recipe, else {DEFAULT_FORMAT})")
    parser.add_argument("--recipe", help="recipe whose validation split openr1-val is (when MODEL is no run)")
    parser.add_argument("--columns", metavar="ROLE=COL,...",
                        help="which column is which in the benchmark files, e.g. problem=question,answer=answer "
                        "(roles: problem, answer, solution; default: told from the column names and contents)")
    parser.add_argument("--base", help="base model of a LoRA adapter MODEL (default: the one the adapter records)")
    parser.add_argument("--data-dir", help="local benchmark copies (default $GRPO_MATH_DATA_DIR, else ../shared/data "
                        "beside the repo when present, else each benchmark's hub dataset)")
    parser.add_argument("--out", help="output folder (default: RUN/eval/CHECKPOINT, else checkpoints/eval/NAME)")
    parser.add_argument("--batch-size", type=int, help="prompts per generate() call (transformers; default 64)")
    parser.add_argument("--backend", default="auto", help="auto (vLLM where installed), hf or vllm")
    parser.add_argument("--dtype", default="auto",
                        help="transformers weights: auto (bf16 where the GPU or CPU has it natively), float32, bfloat16")
    parser.add_argument("--force", action="store_true", help="discard samples already in the output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    on_stop(rerun_command(*given))
    from utils.benchmarks import find_data_dir
    from utils.config import load_recipe
    from utils.data import parse_columns
    from utils.evaluation import (
        EvalRequest,
        benchmark_table,
        check_request,
        evaluate_model,
        kept_samples,
        load_benchmarks,
        resolve_model,
    )

    request = EvalRequest(
        benchmarks=[b.strip() for b in args.bench.split(",") if b.strip()], samples=args.samples,
        temperature=args.temperature, seed=args.seed, limit=args.limit, max_new_tokens=args.max_new_tokens,
        prompt_format=args.prompt_format, backend=args.backend, dtype=args.dtype, force=args.force,
        data_dir=find_data_dir(args.data_dir), progress=not args.no_progress, columns=parse_columns(args.columns),
        **({"batch_size": args.batch_size} if args.batch_size is not None else {}))
    check_request(request)
    spec = resolve_model(args.model, base=args.base)
    if args.recipe:
        spec.recipe = load_recipe(args.recipe)
    benchmarks = load_benchmarks(spec, request)  # every data problem surfaces here, before a model loads
    for bench in benchmarks:
        print(f"{bench.name}: columns: {bench.roles}", flush=True)
    out = Path(args.out) if args.out else spec.default_out
    print(f"evaluating {spec.label} on {', '.join(b.name for b in benchmarks)} -> {out}", flush=True)
    # a rerun without --force continues from the samples kept (with it, it would discard them)
    on_stop(rerun_command(*[a for a in given if a != "--force"]),
            lambda: f"with the samples so far kept in {out}" if kept_samples(out) else None)
    summary = evaluate_model(spec, request, out, benchmarks=benchmarks)
    print("\n".join(benchmark_table(summary["benchmarks"])))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    run_main(main)
