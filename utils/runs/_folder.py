"""The run folder's layout and what can be read from it: checkpoints, their complete markers, best/.

checkpoints/RUN/ holds recipe.resolved.yaml, checkpoint-N/ (each marked complete once every file of its save
is in), best/ (the checkpoint that scored best in training, with best.json), metrics.jsonl, completions.jsonl,
resumes.jsonl, plots/ and the lock file.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.errors import first_line
from utils.files import write_atomic
from utils.models import holds_weights

RESOLVED_RECIPE = "recipe.resolved.yaml"
COMPLETE_MARKER = "checkpoint.complete"  # written after TRL/transformers finished every file of a checkpoint
TRAINER_STATE = "trainer_state.json"  # transformers' own, in every checkpoint-N/
METRICS = "metrics.jsonl"
COMPLETIONS = "completions.jsonl"
RESUMES = "resumes.jsonl"  # one record per resume whose recipe changed harmless keys
LOCK = ".lock"
BEST = "best"
BEST_RECORD = "best.json"  # in best/: {"step": N, "accuracy": A}
PLOTS = "plots"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step}"


def step_of(checkpoint: Path) -> int | None:
    """N of a checkpoint-N folder; None for any other name."""
    match = _CHECKPOINT.match(checkpoint.name)
    return int(match.group(1)) if match else None


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N folder, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [(step, p) for p in run_dir.iterdir() if p.is_dir() and (step := step_of(p)) is not None]
    return sorted(found)


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file() and (checkpoint / TRAINER_STATE).is_file()


def mark_complete(checkpoint: Path, step: int) -> None:
    write_atomic(checkpoint / COMPLETE_MARKER, json.dumps({"step": step}) + "\n")


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint marked complete cannot be resumed from (a file damaged after the save), or None.

    Reads every file's framing without loading tensors: trainer_state.json parses, torch files are intact
    zip archives (their CRCs check), safetensors headers parse.
    """
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, ValueError) as err:
        return f"{TRAINER_STATE}: {first_line(err)}"
    for path in sorted(checkpoint.iterdir()):
        try:
            if path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                if bad:
                    return f"{path.name}: damaged entry {bad}"
            elif path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt"):
                    pass
        except Exception as err:  # zipfile, safetensors and OS errors alike: the file cannot be read back
            return f"{path.name}: {first_line(err)}"
    return None


def last_complete_checkpoint(run_dir: Path, log: Callable[[str], None] | None = None) -> Path | None:
    """Newest checkpoint whose save finished and whose files read back; a half-written one (killed mid-save)
    is never returned, and a damaged one is passed over (said through `log`)."""
    for _, path in reversed(checkpoints(run_dir)):
        if not is_complete(path):
            continue
        problem = checkpoint_problem(path) if log else None
        if problem is None:
            return path
        log(f"{path.name} is damaged ({problem}): passed over")
    return None


def trained_model_folder(run_dir: Path) -> Path | None:
    """What a run folder stands for when evaluated or exported: its best/ (when it holds weights), else its newest
    complete checkpoint; None when it has neither."""
    best = run_dir / BEST
    return best if holds_weights(best) else last_complete_checkpoint(run_dir)


def write_best_record(best_dir: Path, step: int, accuracy: float) -> None:
    write_atomic(best_dir / BEST_RECORD, json.dumps({"step": step, "accuracy": accuracy}) + "\n")


def best_record(run_dir: Path) -> dict[str, Any]:
    """best/best.json of a run ({"step", "accuracy"}), or {} when the run kept no best/."""
    return _read_best_record(run_dir / BEST)


def saved_best_accuracy(run_dir: Path) -> float | None:
    """The validation accuracy of the run's best/ checkpoint, if it has one."""
    accuracy = best_record(run_dir).get("accuracy")
    return float(accuracy) if isinstance(accuracy, (int, float)) else None


def model_step(folder: Path) -> int | None:
    """The training step a model folder of a run holds: best.json's step for best/, N for checkpoint-N."""
    step = _read_best_record(folder).get("step")
    return int(step) if isinstance(step, (int, float)) else step_of(folder)


def _read_best_record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / BEST_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def trained_steps(checkpoint: Path) -> tuple[int, int]:
    """(global_step, max_steps) that a checkpoint's trainer state records."""
    state = json.loads((checkpoint / TRAINER_STATE).read_text())
    return int(state.get("global_step", 0)), int(state.get("max_steps", 0))
