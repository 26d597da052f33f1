"""The run itself: from a RunSetup to a TRL GRPOTrainer with our callbacks, trained into the run folder."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe
from utils.errors import StopRequested, UserError
from utils.runs import (
    COMPLETIONS,
    METRICS,
    RESOLVED_RECIPE,
    FolderLock,
    last_complete_checkpoint,
    saved_best_accuracy,
    step_of,
    trained_steps,
)
from utils.training._distributed import is_main_process, main_decides, start_process_group
from utils.training._faults import RunFailed, SaveFailed, disk_full, guard_checkpoint_saves, save_failure
from utils.training._run_dir import prepare_run_dir, truncate_jsonl
from utils.training._setup import RunSetup, set_up_run
from utils.training._vllm_server import bound_requests, server_failure, server_url, uses_vllm_server


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
    data_report: str
    monitor: Any = None  # RunMonitor: its progress bar is closed when a fault ends the run

    def train(self) -> TrainOutcome:
        """Train to the end, or to a stop; a fault a user can fix (a save that cannot write, a reward that
        fails) is a RunFailed naming the last complete checkpoint, which `--resume` continues from."""
        try:
            self.trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        except SaveFailed as err:
            raise self._ended(save_failure(self.run_dir, err)) from None
        except UserError as err:  # raised inside a step (a reward that failed): what was saved stays
            raise self._ended(RunFailed(str(err), last_complete_checkpoint(self.run_dir))) from None
        except OSError as err:  # requests' ConnectionError is an OSError too
            step = self.trainer.state.global_step
            if err.errno == errno.ENOSPC:
                raise self._ended(disk_full(self.run_dir, step)) from None
            lost = server_failure(err, server_url(self.trainer.args), step) if uses_vllm_server(self.trainer.args) else None
            if lost is None:
                raise
            raise lost from None
        best = self.evaluator.best if self.evaluator and self.evaluator.best >= 0 else None
        return TrainOutcome(self.run_dir, self.trainer.state.global_step, last_complete_checkpoint(self.run_dir),
                            self.stop.requested, best)

    def _ended(self, failure: RunFailed) -> RunFailed:
        bar = getattr(self.monitor, "bar", None)
        if bar is not None:
            bar.close()  # the error line starts on a line of its own
        return failure


def run_training(setup: RunSetup | Recipe, resume: bool = False, force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> TrainOutcome:
    """Everything `grpo_train.py RECIPE` does after the plan: hold the run folder, check it, load, train,
    evaluate, save. Ctrl-C or SIGTERM at any point ends the run cleanly (after training starts: at the end
    of the step, with a checkpoint)."""
    from utils.training._callbacks import GracefulStop  # transformers: loaded on use

    setup = setup if isinstance(setup, RunSetup) else set_up_run(setup)
    start_process_group(setup.config)
    log = log if is_main_process() else _silent
    with contextlib.ExitStack() as held, GracefulStop() as stop:
        def hold_and_check_folder() -> Path | None:  # the main process's alone: the others wait for its answer
            held.enter_context(FolderLock(setup.run_dir, "a run", "or set output.run_name for a separate run",
                                          "output.dir"))
            return prepare_run_dir(setup.recipe, resume=resume, force=force, log=log)

        resume_from = main_decides(hold_and_check_folder)
        finished = _finished(setup, resume_from)
        if finished is not None:
            log(f"{setup.run_dir}: already finished at step {finished.global_step} "
                "(nothing to train; raise training.max_steps to train on)")
            return finished
        try:
            run = _build_trainer(setup, resume_from, progress, stop)
            log(run.data_report)
            steps = run.trainer.args.max_steps
            log(f"training on {run.train_rows} problems, {steps if steps > 0 else 'all'} steps"
                + (f", resuming from {run.resume_from}" if run.resume_from else ""))
            outcome = run.train()
            for line in _skipped_rewards(setup.reward_funcs):
                log(line)
            return outcome
        except StopRequested:
            log(f"{stop.requested} before the first training step: nothing saved")
            return TrainOutcome(setup.run_dir, (step_of(resume_from) if resume_from else None) or 0, resume_from,
                                stop.requested, None)


def _silent(message: str) -> None:
    """The log of a process other than the main one: the main process says it once."""


def prepare_training(setup: RunSetup | Recipe, resume: bool = False, force: bool = False,
                     progress: bool = True) -> PreparedRun:
    """The trainer ready to train, without the run lock or signal handling (for tests and benchmarks)."""
    from utils.training._callbacks import GracefulStop

    setup = setup if isinstance(setup, RunSetup) else set_up_run(setup)
    resume_from = prepare_run_dir(setup.recipe, resume=resume, force=force)
    return _build_trainer(setup, resume_from, progress, GracefulStop())


def _finished(setup: RunSetup, resume_from: Path | None) -> TrainOutcome | None:
    """A resumed run that already reached its last step: TRL would train one step past it."""
    if resume_from is None:
        return None
    done, planned = trained_steps(resume_from)
    target = setup.config.max_steps if setup.config.max_steps > 0 else planned
    if not target or done < target:
        return None
    return TrainOutcome(setup.run_dir, done, resume_from, None, saved_best_accuracy(setup.run_dir))


def _skipped_rewards(reward_funcs: list[Any]) -> list[str]:
    """A line per reward that failed on some completions under rewards_on_error: skip, with the count."""
    return [f"rewards.{f.__name__}: {f.skipped} completions scored as no reward after the reward failed "
            "(rewards_on_error: skip)" for f in reward_funcs if getattr(f, "skipped", 0)]


def _build_trainer(setup: RunSetup, resume_from: Path | None, progress: bool, stop: Any) -> PreparedRun:
    """Load model and data, attach callbacks and build the TRL trainer."""
    recipe = setup.recipe
    # heavy modules load here, not at import: `--dry-run` and recipe checks stay fast
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from utils.data import load_training_data
    from utils.evaluation import watched_sets
    from utils.models import load_model_and_tokenizer
    from utils.training._callbacks import RecordedBase, RewardRecorder, RunMonitor
    from utils.training._diagnostics import SignalWatch

    if not progress:  # transformers' "Loading weights" bar too: stderr is left to warnings and errors
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    loaded = load_model_and_tokenizer(recipe, setup.hardware, setup.backend)
    data = load_training_data(recipe, loaded.tokenizer)
    watched = watched_sets(recipe, data.validation) if recipe.eval.every_steps else []  # before the folder is written
    if setup.vllm_on_cpu:
        from utils.training._vllm_cpu import check_vllm_runs_on_cpu, size_kv_cache

        check_vllm_runs_on_cpu(loaded.model.config, recipe.model.load_in_4bit)
        size_kv_cache()

    run_dir = setup.run_dir
    main = is_main_process()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        recipe.dump(run_dir / RESOLVED_RECIPE)
        if resume_from is not None:
            for name in (METRICS, COMPLETIONS):
                truncate_jsonl(run_dir / name, step_of(resume_from) or 0)

    recorder = RewardRecorder()
    monitor = RunMonitor(run_dir, recorder, recipe.output.completions_every, recipe.output.completions_sample,
                         plots=recipe.output.plots, progress=progress and main, writes=main,
                         watch=SignalWatch(dynamic_sampling=recipe.dynamic_sampling.enabled))
    evaluator = _evaluator(recipe, watched, loaded.tokenizer, monitor)
    # Unsloth's 4-bit load swaps in its pre-quantized repo: saved adapters name the user's base again
    recorded_base = RecordedBase(loaded.base_name, main) if setup.backend.name == "unsloth" else None
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=recorder.wrap(setup.reward_funcs),
        args=setup.config,
        train_dataset=data.train,
        processing_class=loaded.tokenizer,
        callbacks=[c for c in (recorded_base, evaluator, monitor, stop) if c is not None],
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace raw log dicts
    guard_checkpoint_saves(trainer, main)  # a save that cannot write: one line, the partial folder removed
    if setup.vllm_on_cpu:
        from utils.training._vllm_cpu import reload_weights_in_place

        reload_weights_in_place(trainer.vllm_generation)
    if evaluator is not None and setup.backend.name == "hf":  # Unsloth's engine applies the LoRA per request
        from utils.training._eval_engine import colocated_eval_engine

        evaluator.engine = colocated_eval_engine(trainer)  # evaluate through the run's vLLM engine where it has one
    client = getattr(getattr(trainer, "vllm_generation", None), "vllm_client", None)  # server mode, main process
    if client is not None:
        bound_requests(client.session)  # a hung server is an error after a while, not a hang
    if not setup.hardware.cuda:
        from utils.training._cpu_logprobs import score_completion_tokens_only

        score_completion_tokens_only()  # TRL scores prompt positions too off Triton: pure cost on CPU
    if setup.cpu_generation_copy:
        from utils.training._cpu_generation import use_generation_copy

        use_generation_copy(trainer, setup.cpu_generation_copy)
    _watch_learning_signal(trainer, recipe)
    return PreparedRun(trainer, run_dir, resume_from, stop, evaluator, len(data.train), str(data.report), monitor)


def _watch_learning_signal(trainer: Any, recipe: Recipe) -> None:
    """The within-group reward spread every step and, when the recipe asks, dynamic sampling built on it."""
    from utils.training._group_rewards import watch_group_rewards

    groups = watch_group_rewards(trainer)
    if recipe.dynamic_sampling.enabled:
        from utils.training._dynamic_sampling import use_dynamic_sampling

        sampling = recipe.dynamic_sampling
        use_dynamic_sampling(trainer, groups, sampling.max_extra_batches, sampling.oversample)


def _evaluator(recipe: Recipe, watched: list[Any], tokenizer: Any, monitor: Any) -> Any:
    """Greedy accuracy on the watched held-out sets every eval.every_steps steps (None when off or empty)."""
    if not watched:
        return None
    from utils.training._callbacks import EvalCallback

    return EvalCallback(watched, recipe.eval.every_steps, recipe.eval.batch_size, recipe.run_dir, tokenizer, monitor,
                        best_by=recipe.eval.best_name)
