"""Merge a LoRA adapter into its base model and prove the result: reloaded, it must give base + adapter's
logits (within a tolerance for the precision) and the same greedy text, or nothing is written.

    python scripts/merge_lora.py checkpoints/subset10k --out exports/subset10k [--dtype bf16] [--gguf q8_0]
    python scripts/merge_lora.py checkpoints/subset10k --checkpoint 400 --out exports/step400
    python scripts/merge_lora.py path/to/adapter --adapter-only --out exports/adapter

RUN_OR_ADAPTER is a run folder (its best/ by default, --checkpoint N for another) or a LoRA adapter folder.
The base is loaded unquantized even when training was 4-bit. The export is built in a hidden folder beside
--out and renamed at the end: a failure or Ctrl-C leaves no --out behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_main
from utils.export import GGUF_TYPES, ExportOptions, export
from utils.models import PRECISIONS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="RUN_OR_ADAPTER", help="run folder or LoRA adapter folder")
    parser.add_argument("--out", required=True, type=Path, help="folder to write (must not exist or be empty)")
    parser.add_argument("--checkpoint", type=int, metavar="N", help="export checkpoint-N of the run instead of best/")
    parser.add_argument("--base", help="base model to merge onto (default: the adapter's recorded base)")
    parser.add_argument("--dtype", choices=sorted(PRECISIONS), help="weights of the export (default: the base's own)")
    parser.add_argument("--adapter-only", action="store_true", help="export the cleaned adapter, not a merged model")
    parser.add_argument("--gguf", choices=GGUF_TYPES, help="also write a GGUF file for llama.cpp / Ollama")
    parser.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check (said in the card)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--max-shard-size", default="2GB", help="split safetensors past this size (default 2GB)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the export to this Hub repo (needs a token)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a stop unwinds (run_main's SIGTERM handler raises), so the half-built export is removed: nothing kept
    on_stop(rerun_command(*(sys.argv[1:] if argv is None else argv)))
    options = ExportOptions(
        source=args.source, out=args.out, checkpoint=args.checkpoint, base=args.base, dtype=args.dtype,
        adapter_only=args.adapter_only, gguf=args.gguf, verify=not args.no_verify, force=args.force,
        max_shard_size=args.max_shard_size, push_to_hub=args.push_to_hub,
    )
    result = export(options)
    for check in result.checks:
        print(check.describe())
    if result.adapter_effect is not None:
        print(f"the adapter changes the base's logits by up to {result.adapter_effect:.3g}")
    if not result.checks:
        print("not verified (--no-verify)")
    if result.gguf_file:
        print(f"GGUF: {result.gguf_file}")
    print(f"exported ({result.dtype}) to {result.out}" + (f"; pushed to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
