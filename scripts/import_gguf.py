"""Turn a GGUF model into a plain, trainable Hugging Face checkpoint (safetensors + tokenizer), verified:
reloaded, it must give the GGUF model's logits and greedy text (as transformers reads the GGUF file).

    python scripts/import_gguf.py SmolLM2-135M-Instruct.Q4_1.gguf --out checkpoints/smollm2

Quantized GGUF weights are dequantized to fp32: the checkpoint trains like any other (model.name: DIR).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401  (puts the repo root on sys.path)

from utils.cli import on_stop, rerun_command, run_main
from utils.export import import_gguf


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gguf", type=Path, metavar="FILE.gguf", help="GGUF model file")
    parser.add_argument("--out", required=True, type=Path, help="folder to write (must not exist or be empty)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a stop unwinds (run_main's SIGTERM handler raises), so the half-built export is removed: nothing kept
    on_stop(rerun_command(*(sys.argv[1:] if argv is None else argv)))
    result = import_gguf(args.gguf, args.out, force=args.force, verify=not args.no_verify)
    print(result.check.describe() if result.check else "not verified (--no-verify)")
    print(f"checkpoint: {result.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
