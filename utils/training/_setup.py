"""TRL GRPOConfig from a recipe, with defaults chosen for the machine it runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe
from utils.errors import UserError, first_line
from utils.models import Hardware, detect_hardware

# Our defaults where TRL's do not suit a run folder people read: log every step (metrics.jsonl and
# plots need it), no external trackers, keep the last few checkpoints only.
RUN_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 100,
    "save_total_limit": 3,
}
# Keys not worth showing in a plan's diff: paths we set, and bookkeeping TRL derives.
_DIFF_IGNORED = {"output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token"}


def machine_defaults(hw: Hardware) -> dict[str, Any]:
    """Precision and device flags per machine: TRL's own GRPOConfig() raises on a CPU machine."""
    if not hw.cuda:
        return {"use_cpu": True}  # TRL then trains under bf16 autocast, the fastest CPU setting measured
    if hw.bf16:
        return {"bf16": True}
    return {"bf16": False, "fp16": True}  # T4 and older: no bf16


def check_trl_trains_here(backend: str, hw: Hardware, trl_version: str | None = None) -> None:
    """TRL 1.15 (Unsloth's pin) scores log-probs with a Triton kernel and has no CPU fallback: its
    GRPOTrainer fails at the first step on CPU. Unsloth's trainer replaces that loss; TRL 1.16 falls back."""
    from importlib.metadata import version

    from packaging.version import Version

    trl_version = trl_version or version("trl")
    if backend == "hf" and not hw.cuda and Version(trl_version) < Version("1.16"):
        raise UserError(
            f"TRL {trl_version}'s GRPOTrainer needs a GPU (a Triton log-prob kernel); on CPU use TRL >= 1.16 "
            "(the .venv that `make setup` builds) or model.backend: unsloth"
        )


def grpo_config_kwargs(recipe: Recipe, hw: Hardware | None = None, **extra: Any) -> dict[str, Any]:
    from utils.models import resolve_backend

    hw = hw or detect_hardware()
    backend = resolve_backend(recipe.model, hw).name
    check_trl_trains_here(backend, hw)
    backend_values: dict[str, Any] = {}
    if backend == "unsloth":
        from utils.models import unsloth_grpo_overrides

        backend_values = unsloth_grpo_overrides(recipe.model)  # vLLM colocate, dtype agreement
    kwargs: dict[str, Any] = {**RUN_DEFAULTS, **machine_defaults(hw), **backend_values, **extra, **recipe.training}
    if kwargs.get("use_vllm") and not hw.vllm_installed:
        raise UserError("training.use_vllm: true, but vLLM is not installed here "
                        "(make setup-gpu on a CUDA machine, make setup-vllm for vLLM's CPU build)")
    kwargs["output_dir"] = str(recipe.run_dir)
    return kwargs


def build_grpo_config(recipe: Recipe, hw: Hardware | None = None, **extra: Any) -> Any:
    """The GRPOConfig for this recipe on this machine; TRL's own consistency errors become UserErrors.

    `extra` holds values we derive (reward weights, progress-bar choice); the recipe's own keys win.
    """
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(recipe, hw, **extra)
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(f"training: TRL rejects these settings: {first_line(err)}") from None


def trl_default_config(output_dir: str, hw: Hardware | None = None) -> Any:
    """GRPOConfig as bare TRL would build it on this machine (only the flags TRL requires to start)."""
    from trl import GRPOConfig

    hw = hw or detect_hardware()
    return GRPOConfig(output_dir=output_dir, **({} if hw.cuda else {"use_cpu": True}))


def differences_from_trl(config: Any, hw: Hardware | None = None) -> dict[str, tuple[Any, Any]]:
    """{field: (ours, trl_default)} for every field where the effective config differs from TRL's."""
    ours = config.to_dict()
    base = trl_default_config(config.output_dir, hw).to_dict()
    return {k: (v, base.get(k)) for k, v in ours.items() if k not in _DIFF_IGNORED and base.get(k) != v}


def uses_cpu_bf16_generation(recipe: Recipe, hw: Hardware, config: Any, backend: str) -> bool:
    """Sample from a bf16 merged copy (utils/cpu_generation): CPU, hf backend, bf16 training, no 4-bit."""
    m = recipe.model
    return (m.cpu_bf16_generation and not hw.cuda and backend == "hf" and bool(config.bf16)
            and not config.use_vllm and not m.load_in_4bit)


# ---------------------------------------------------------------------------------------------
# The run


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
        from utils.training._run_dir import last_complete_checkpoint

        self.trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        best = self.evaluator.best if self.evaluator and self.evaluator.best >= 0 else None
        return TrainOutcome(self.run_dir, self.trainer.state.global_step, last_complete_checkpoint(self.run_dir),
                            self.stop.requested, best)


def prepare_training(recipe: Recipe, resume: bool = False, force: bool = False, progress: bool = True) -> PreparedRun:
    """Check the run folder, load model and data, build rewards, config, callbacks and the TRL trainer.

    Every check that can fail on user input runs before the run folder is written to.
    """
    # heavy modules load here, not at import: `--dry-run` and recipe checks stay fast
    from utils.data import load_training_data
    from utils.evaluation import watched_sets
    from utils.models import import_backend, load_model_and_tokenizer, resolve_backend
    from utils.rewards import build_reward_functions
    from utils.training._callbacks import EvalCallback, GracefulStop, RewardRecorder, RunMonitor
    from utils.training._run_dir import COMPLETIONS, METRICS, RESOLVED_RECIPE, prepare_run_dir, step_of, truncate_jsonl

    hw = detect_hardware()
    resume_from = prepare_run_dir(recipe, resume=resume, force=force)
    import_backend(resolve_backend(recipe.model, hw))

    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    loaded = load_model_and_tokenizer(recipe, hw)
    data = load_training_data(recipe, loaded.tokenizer)
    watched = watched_sets(recipe, data.validation) if recipe.eval.every_steps else []  # before the folder is written
    max_completion_length = recipe.training.get("max_completion_length") or 512
    reward_funcs, weights = build_reward_functions(recipe.rewards, recipe.prompt.format, max_completion_length)
    config = build_grpo_config(recipe, hw, reward_weights=weights, disable_tqdm=True)
    vllm_on_cpu = config.use_vllm and config.vllm_mode == "colocate" and not hw.cuda  # server mode: its own machine
    if vllm_on_cpu:
        from utils.training._vllm_cpu import check_vllm_runs_on_cpu, size_kv_cache

        check_vllm_runs_on_cpu(loaded.model.config, recipe.model.load_in_4bit)
        size_kv_cache()

    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe.dump(run_dir / RESOLVED_RECIPE)
    if resume_from is not None:
        for name in (METRICS, COMPLETIONS):
            truncate_jsonl(run_dir / name, step_of(resume_from))

    recorder = RewardRecorder()
    monitor = RunMonitor(run_dir, recorder, recipe.output.completions_every, recipe.output.completions_sample,
                         plots=recipe.output.plots, progress=progress)
    stop = GracefulStop()
    callbacks: list[Any] = [monitor, stop]
    evaluator = None
    if watched:
        evaluator = EvalCallback(watched, recipe.eval.every_steps, recipe.eval.batch_size, run_dir, loaded.tokenizer,
                                 monitor, best_by=recipe.eval.best_name)
        callbacks.insert(0, evaluator)
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=recorder.wrap(reward_funcs),
        args=config,
        train_dataset=data.train,
        processing_class=loaded.tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace raw log dicts
    if vllm_on_cpu:
        from utils.training._vllm_cpu import reload_weights_in_place

        reload_weights_in_place(trainer.vllm_generation)
    if uses_cpu_bf16_generation(recipe, hw, config, loaded.backend.name):
        from utils.training._cpu_generation import use_generation_copy

        use_generation_copy(trainer)
    return PreparedRun(trainer, run_dir, resume_from, stop, evaluator, len(data.train))


def run_training(recipe: Recipe, resume: bool = False, force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print) -> TrainOutcome:
    """Everything `grpo_train.py RECIPE` does: check the run folder, load, train, evaluate, save."""
    run = prepare_training(recipe, resume=resume, force=force, progress=progress)
    steps = run.trainer.args.max_steps
    log(f"training on {run.train_rows} problems, {steps if steps > 0 else 'all'} steps"
        + (f", resuming from {run.resume_from}" if run.resume_from else ""))
    return run.train()
