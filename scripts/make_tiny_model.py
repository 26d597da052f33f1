"""Build the tiny random Qwen2 used by the offline demo and the tests.

    python scripts/make_tiny_model.py --out checkpoints/tiny-qwen2
"""

from __future__ import annotations

import argparse

import _bootstrap  # noqa: F401

from utils.cli import run_main
from utils.models import build_tiny_qwen2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="checkpoints/tiny-qwen2", help="folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_qwen2(args.out, seed=args.seed)
    print(f"tiny Qwen2 written to {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
