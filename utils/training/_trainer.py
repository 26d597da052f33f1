"""The run itself: from a RunSetup to a TRL GRPOTrainer with our callbacks, trained into the run folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe
from utils.training._run_dir import (
    COMPLETIONS,
    METRICS,
    RESOLVED_RECIPE,
    last_complete_checkpoint,
    prepare_run_dir,
    step_of,
    truncate_jsonl,
)
from utils.training._setup import RunSetup, set_up_run


@dataclass
class TrainOutcome:
    run_dir: Path
    global_step: int
    last_checkpoint: Path | None
    stopped_by: str | None  # the signal that ended the run early, if any
    best_accuracy: float | None


@dataclass
class PreparedRun:
    """A trainer ready to `train()`, with what the run needs around it."""

    trainer: Any
    run_dir: Path
    resume_from: Path | None
    stop: Any  # GracefulStop
    evaluator: Any  # EvalCallback or None
    train_rows: int

    def train(self) -> TrainOutcome:
        self.trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        best = self.evaluator.best if self.evaluator and self.evaluator.best >= 0 else None
        return TrainOutcome(self.run_dir, self.trainer.state.global_step, last_complete_checkpoint(self.run_dir),
                            self.stop.requested, best)


def prepare_training(setup: RunSetup | Recipe, resume: bool = False, force: bool = False,
                     progress: bool = True) -> PreparedRun:
    """Check the run folder, load model and data, attach callbacks and build the TRL trainer.

    Every check that can fail on user input runs before the run folder is written to.
    """
    setup = setup if isinstance(setup, RunSetup) else set_up_run(setup)
    recipe = setup.recipe
    resume_from = prepare_run_dir(recipe, resume=resume, force=force)
    # heavy modules load here, not at import: `--dry-run` and recipe checks stay fast
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from utils.data import load_training_data
    from utils.models import load_model_and_tokenizer
    from utils.training._callbacks import GracefulStop, RewardRecorder, RunMonitor

    loaded = load_model_and_tokenizer(recipe, setup.hardware, setup.backend)
    data = load_training_data(recipe, loaded.tokenizer)
    if setup.vllm_on_cpu:
        from utils.training._vllm_cpu import check_vllm_runs_on_cpu, size_kv_cache

        check_vllm_runs_on_cpu(loaded.model.config, recipe.model.load_in_4bit)
        size_kv_cache()

    run_dir = setup.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe.dump(run_dir / RESOLVED_RECIPE)
    if resume_from is not None:
        for name in (METRICS, COMPLETIONS):
            truncate_jsonl(run_dir / name, step_of(resume_from))

    recorder = RewardRecorder()
    monitor = RunMonitor(run_dir, recorder, recipe.output.completions_every, recipe.output.completions_sample,
                         plots=recipe.output.plots, progress=progress)
    stop = GracefulStop()
    evaluator = _evaluator(recipe, data.validation, loaded.tokenizer, monitor)
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=recorder.wrap(setup.reward_funcs),
        args=setup.config,
        train_dataset=data.train,
        processing_class=loaded.tokenizer,
        callbacks=[c for c in (evaluator, monitor, stop) if c is not None],
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace raw log dicts
    if setup.vllm_on_cpu:
        from utils.training._vllm_cpu import reload_weights_in_place

        reload_weights_in_place(trainer.vllm_generation)
    if setup.cpu_bf16_generation:
        from utils.training._cpu_generation import use_generation_copy

        use_generation_copy(trainer)
    return PreparedRun(trainer, run_dir, resume_from, stop, evaluator, len(data.train))


def _evaluator(recipe: Recipe, validation: Any, tokenizer: Any, monitor: Any) -> Any:
    """Greedy accuracy on held-out problems every eval.every_steps steps (None when off or no problems)."""
    if not recipe.eval.every_steps or not len(validation):
        return None
    from utils.training._callbacks import EvalCallback

    rows = validation.select(range(min(recipe.eval.samples, len(validation))))
    return EvalCallback(list(rows), recipe.eval.every_steps, recipe.eval.max_new_tokens, recipe.eval.batch_size,
                        recipe.run_dir, tokenizer, monitor)


def run_training(setup: RunSetup | Recipe, resume: bool = False, force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> TrainOutcome:
    """Everything `grpo_train.py RECIPE` does after the plan: check the run folder, load, train, evaluate, save."""
    run = prepare_training(setup, resume=resume, force=force, progress=progress)
    steps = run.trainer.args.max_steps
    log(f"training on {run.train_rows} problems, {steps if steps > 0 else 'all'} steps"
        + (f", resuming from {run.resume_from}" if run.resume_from else ""))
    return run.train()
