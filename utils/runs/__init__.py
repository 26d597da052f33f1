"""The run folder's contract, read by training, evaluation and export alike: its file names, checkpoints and
their complete markers, best/, which folder a run stands for, the run's validated recipe, the folder lock.

Training writes a run folder (utils.training); evaluation and export read one through this package only.
"""

from utils.runs._folder import (
    BEST,
    COMPLETE_MARKER,
    COMPLETIONS,
    LOCK,
    METRICS,
    PLOTS,
    RESOLVED_RECIPE,
    RESUMES,
    best_record,
    checkpoint_dir,
    checkpoints,
    is_complete,
    last_complete_checkpoint,
    mark_complete,
    model_step,
    saved_best_accuracy,
    step_of,
    trained_model_folder,
    trained_steps,
    write_best_record,
)
from utils.runs._lock import FolderLock
from utils.runs._recipe import find_run_dir, run_recipe, started_in

__all__ = [
    "BEST",
    "COMPLETE_MARKER",
    "COMPLETIONS",
    "LOCK",
    "METRICS",
    "PLOTS",
    "RESOLVED_RECIPE",
    "RESUMES",
    "FolderLock",
    "best_record",
    "checkpoint_dir",
    "checkpoints",
    "find_run_dir",
    "is_complete",
    "last_complete_checkpoint",
    "mark_complete",
    "model_step",
    "run_recipe",
    "saved_best_accuracy",
    "started_in",
    "step_of",
    "trained_model_folder",
    "trained_steps",
    "write_best_record",
]
