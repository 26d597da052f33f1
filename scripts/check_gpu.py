"""Can this machine run the pinned GPU set (requirements-gpu.txt)? Prints the GPU, its driver and CUDA, and the
torch already installed (if any); exits 2 with one line saying what to do when the GPU or driver cannot run the
pinned torch (no GPU, a driver older than the CUDA build needs, a GPU older than Turing).

    python scripts/check_gpu.py

Runs before the install (`make setup-gpu` and the Colab notebook call it first): it needs only the standard
library and PyYAML (Colab has both).
"""

from __future__ import annotations

import argparse
import importlib.util

import _bootstrap  # noqa: F401

from utils.cli import run_main
from utils.errors import UserError
from utils.models import MIN_DRIVER, PINNED_CUDA_MAJOR, gpu_problem, query_gpus, vllm_runs_on


def installed_torch() -> str:
    """The torch this Python has now, and what CUDA it was built for (Colab ships one before our install)."""
    if importlib.util.find_spec("torch") is None:
        return "torch: not installed yet"
    import torch

    built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    return f"torch: {torch.__version__} ({built}; CUDA usable now: {'yes' if torch.cuda.is_available() else 'no'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    gpus = query_gpus()
    for gpu in gpus:
        print(f"GPU: {gpu.describe()}")
    print(installed_torch())
    problem = gpu_problem(gpus)
    if problem:
        raise UserError(problem)
    print(f"OK: this GPU and driver run the pinned set (torch's CUDA {PINNED_CUDA_MAJOR}.0 build: driver >= "
          f"{MIN_DRIVER})" + ("" if vllm_runs_on(gpus[0].compute_capability) else
                               "; vLLM generation (model.fast_inference) is turned off on this GPU, see the plan"))
    return 0


if __name__ == "__main__":
    run_main(main)
