"""Build the tiny random Qwen2 used by the offline demo and the tests (or, with --size qwen2.5-0.5b, a random model
of Qwen2.5-0.5B's shapes for GPU timings without the hub).

    python scripts/make_tiny_model.py --out checkpoints/tiny-qwen2 [--size tiny|qwen2.5-0.5b]
"""

from __future__ import annotations

import argparse

import _bootstrap  # noqa: F401

from utils.cli import run_main
from utils.models import QWEN2_SHAPES, build_tiny_qwen2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="checkpoints/tiny-qwen2", help="folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(QWEN2_SHAPES), default="tiny", help="the shapes (default: %(default)s)")
    args = parser.parse_args(argv)
    path = build_tiny_qwen2(args.out, seed=args.seed, **QWEN2_SHAPES[args.size])
    print(f"random Qwen2 ({args.size} shapes) written to {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
