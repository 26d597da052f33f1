"""Trainer callbacks that make a GRPO run folder people can read, resume and trust.

- RewardRecorder: wraps reward functions so each step's prompts, completions and rewards can be sampled.
- RunMonitor: metrics.jsonl, completions.jsonl, plots/, progress bar, complete-checkpoint markers.
- EvalCallback: greedy pass@1 on each watched benchmark every N steps; the best checkpoint kept as best/.
- GracefulStop: Ctrl-C / SIGTERM finish the current step, save a checkpoint and end the run cleanly.
"""

from __future__ import annotations

import functools
import json
import math
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from utils.answers import extract_answer
from utils.errors import StopRequested
from utils.evaluation import evaluate_accuracy
from utils.files import staged
from utils.rewards import completion_text
from utils.runs import (
    BEST,
    COMPLETIONS,
    METRICS,
    PLOTS,
    checkpoint_dir,
    mark_complete,
    saved_best_accuracy,
    write_best_record,
)
from utils.training._diagnostics import EXTRACTION, SignalWatch
from utils.training._distributed import largest_across_ranks, wait_for_all
from utils.training._faults import SaveFailed, is_write_failure
from utils.training._plots import plot_metrics


def problem_text(prompt: Any) -> str:
    """The problem a prompt asks: its last user message (a string prompt whole), for completions.jsonl."""
    if isinstance(prompt, list):
        return next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
    return str(prompt)


class RewardRecorder:
    """Keeps the latest batch each reward function scored, for completions.jsonl (any TRL version), and counts
    the completions whose final answer extract_answer reads (the extraction rate, a sign of format collapse)."""

    def __init__(self) -> None:
        self.batch: dict[str, Any] = {}
        self.rewards: dict[str, list] = {}
        self.extracted = 0
        self.scored = 0

    def wrap(self, funcs: list[Callable]) -> list[Callable]:
        return [self._wrap(f) for f in funcs]

    def _wrap(self, func: Callable) -> Callable:
        @functools.wraps(func)  # keeps __name__: TRL logs rewards/<name>/mean by it
        def recorded(prompts: list, completions: list, **kwargs: Any) -> list:
            values = func(prompts, completions, **kwargs)
            if self.batch.get("completions") is not completions:  # first reward of a new batch
                self.batch = {"prompts": prompts, "completions": completions, "answer": kwargs.get("answer")}
                self.rewards = {}
                self._count_answers(completions)
            self.rewards[func.__name__] = list(values)
            return values

        return recorded

    def _count_answers(self, completions: list) -> None:
        self.extracted += sum(extract_answer(completion_text(c)) is not None for c in completions)
        self.scored += len(completions)

    def take_extraction_rate(self) -> float | None:
        """Share of the completions scored since the last call with a final answer to read (None: none scored)."""
        rate = self.extracted / self.scored if self.scored else None
        self.extracted = self.scored = 0
        return rate

    def sample(self, k: int) -> list[dict]:
        """Up to k records of the latest batch: prompt, completion, gold, extracted answer, each reward."""
        completions = self.batch.get("completions") or []
        prompts = self.batch.get("prompts") or []
        golds = self.batch.get("answer") or [None] * len(completions)
        out = []
        n = len(completions)
        # spread over the batch: consecutive completions share a prompt (groups of num_generations)
        for i in sorted({j * n // min(k, n) for j in range(min(k, n))}):
            text = completion_text(completions[i])
            out.append({
                "prompt": problem_text(prompts[i]),
                "completion": text,
                "gold": golds[i],
                "extracted": extract_answer(text),
                "rewards": {name: values[i] for name, values in self.rewards.items()},
            })
        return out


def peak_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class JsonlWriter:
    """One JSON record per line; NaN and inf (a metric TRL averaged over nothing) are written as null, since
    JSON has no spelling for them and strict readers refuse Python's bare NaN."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_finite(record), ensure_ascii=False, default=str, allow_nan=False)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class RunMonitor(TrainerCallback):
    """metrics.jsonl every log, completions.jsonl every K steps, plots, a progress bar, checkpoint markers."""

    def __init__(self, run_dir: Path, recorder: RewardRecorder, completions_every: int, completions_sample: int,
                 plots: bool, plot_interval_s: float = 60.0, progress: bool = True, writes: bool = True,
                 watch: SignalWatch | None = None) -> None:
        self.run_dir = run_dir
        self.watch = watch or SignalWatch()  # learning-signal warnings, each once per episode
        self.writes = writes  # False on ranks other than the main one: the run folder is the main process's
        self.metrics = JsonlWriter(run_dir / METRICS)
        self.completions = JsonlWriter(run_dir / COMPLETIONS)
        self.recorder = recorder
        self.completions_every = completions_every
        self.completions_sample = completions_sample
        self.plots = plots
        # A refresh costs ~0.3 s (matplotlib): by wall time, not steps, so it stays under 1% of a run
        # however short its steps are (every 10 steps cost 7-15% of a tiny model's 0.2 s steps).
        self.plot_interval_s = plot_interval_s
        self.last_plot = 0.0
        self.progress = progress
        self.bar: Any = None
        self.step_started = 0.0
        self.step_seconds = 0.0
        self.eval_seconds = 0.0  # spent evaluating inside the current step (EvalCallback adds it)
        self.last_log_time = 0.0
        self.last_tokens = 0.0
        self.accuracy: float | None = None
        self.reward: float | None = None

    def say(self, line: str) -> None:
        """A line on stderr that leaves the progress bar intact (tqdm.write clears it, prints, redraws it)."""
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)

    def refresh_plots(self) -> None:
        if self.plots and self.writes:
            plot_metrics(self.run_dir / METRICS, self.run_dir / PLOTS)

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_log_time = self.last_plot = time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="GRPO", unit="step",
                            dynamic_ncols=True, file=sys.stderr)

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()
        self.eval_seconds = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds = time.perf_counter() - self.step_started - self.eval_seconds
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True  # always keep the final step, whatever save_steps says
        if self.writes and self.completions_every and state.global_step % self.completions_every == 0:
            for record in self.recorder.sample(self.completions_sample):
                self.completions.write({"step": state.global_step, **record})
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self._show()

    def _show(self) -> None:
        if self.bar is None:
            return
        postfix = {}
        if self.reward is not None:
            postfix["reward"] = f"{self.reward:.3f}"
        if self.accuracy is not None:
            postfix["acc"] = f"{self.accuracy:.1%}"
        self.bar.set_postfix(postfix, refresh=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "train_runtime" in logs or not self.writes:  # the trainer's end-of-run summary, not a step
            return
        now = time.perf_counter()
        record: dict[str, Any] = {"step": state.global_step}
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        tokens = logs.get("num_tokens")
        if isinstance(tokens, (int, float)) and now > self.last_log_time:
            record["tokens_per_s"] = (tokens - self.last_tokens) / (now - self.last_log_time)
            self.last_tokens = tokens
        self.last_log_time = now
        rate = self.recorder.take_extraction_rate()
        if rate is not None:
            record[EXTRACTION] = rate
        record["step_time_s"] = round(self.step_seconds, 4)
        record["peak_memory_mib"] = round(peak_memory_mib(), 1)
        self.reward = logs.get("reward", self.reward)
        self._show()  # the step's reward is known only now, after on_step_end
        self.metrics.write(record)
        for warning in self.watch.observe(record):
            self.say(warning)
        if now - self.last_plot >= self.plot_interval_s:
            self.refresh_plots()
            self.last_plot = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        wait_for_all()  # every rank's files (its RNG state, DeepSpeed's shards) are in before the marker
        checkpoint = checkpoint_dir(Path(args.output_dir), state.global_step)
        if self.writes and checkpoint.is_dir():
            mark_complete(checkpoint, state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.refresh_plots()
        if self.bar is not None:
            self.bar.close()


class RecordedBase(TrainerCallback):
    """Unsloth backend: each saved adapter (checkpoint-N/, best/) names the user's base model, not the
    pre-quantized repo Unsloth swapped in for 4-bit loading (utils.models.restore_base). Listed first, so a
    checkpoint is right before RunMonitor marks it complete."""

    def __init__(self, base: str, writes: bool = True) -> None:
        self.base, self.writes = base, writes

    def on_save(self, args, state, control, **kwargs):
        if self.writes:
            self.restore(Path(args.output_dir), state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.writes:
            self.restore(Path(args.output_dir), state.global_step)

    def restore(self, run_dir: Path, step: int) -> None:
        from utils.models import restore_base

        for folder in (checkpoint_dir(run_dir, step), run_dir / BEST):
            restore_base(folder, self.base)


class EvalCallback(TrainerCallback):
    """Greedy pass@1 on each watched benchmark every N steps (and before the first); best checkpoint -> best/.

    GRPO has no meaningful eval loss: accuracy with our verifier is the number that picks a checkpoint.
    Each benchmark is logged as eval/<name>/accuracy; eval/accuracy is the one `best_by` names (it picks best/).
    """

    def __init__(self, sets: list, every_steps: int, batch_size: int, run_dir: Path, tokenizer: Any,
                 monitor: RunMonitor, best_by: str | None = None) -> None:
        self.sets = sets  # utils.evaluation.WatchedSet: name, rows, max_new_tokens
        self.every_steps = every_steps
        self.batch_size = batch_size
        self.best_by = best_by if any(s.name == best_by for s in sets) else sets[0].name
        self.best_dir = run_dir / BEST
        self.tokenizer = tokenizer
        self.monitor = monitor
        self.engine: Callable[[], Any] | None = None  # the run's vLLM engine, set once the trainer has one
        saved = saved_best_accuracy(run_dir)
        self.best = -1.0 if saved is None else saved

    def evaluate(self, model: Any, step: int) -> float:
        started = time.perf_counter()
        record: dict[str, Any] = {"step": step}
        generator = self.engine() if self.engine is not None else None  # None: transformers' generate on `model`
        for watched in self.sets:
            result = evaluate_accuracy(model, self.tokenizer, watched.rows, watched.max_new_tokens, self.batch_size,
                                       generator=generator)
            counts = {"accuracy": result.accuracy, "correct": result.correct, "total": result.total}
            record.update({f"eval/{watched.name}/{key}": value for key, value in counts.items()})
            if watched.name == self.best_by:
                record.update({f"eval/{key}": value for key, value in counts.items()})
        seconds = time.perf_counter() - started
        self.monitor.eval_seconds += seconds  # kept out of the step's step_time_s
        record["eval/seconds"] = round(seconds, 2)
        if self.monitor.writes:  # every rank evaluates (FSDP needs them all); the main one writes
            self.monitor.metrics.write(record)
        accuracy = record["eval/accuracy"]
        self.monitor.accuracy = accuracy
        if accuracy > self.best:
            self.best = accuracy
            if self.monitor.writes:
                self._save_best(model, step, accuracy)
        return accuracy

    def _save_best(self, model: Any, step: int, accuracy: float) -> None:
        """Written whole under a temporary name, then swapped in: best/ is never half-written (a write that
        fails, a full disk, leaves the previous best/ and ends the run with SaveFailed)."""
        try:
            with staged(self.best_dir) as tmp:
                model.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
                write_best_record(tmp, step, accuracy)
        except Exception as err:
            if not is_write_failure(err):
                raise
            raise SaveFailed("best/", step, err) from err

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0 and self.every_steps:
            self.evaluate(model, 0)  # the starting point: what the model knew before this run

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_steps and state.global_step % self.every_steps == 0:
            self.evaluate(model, state.global_step)
        elif state.max_steps and state.global_step >= state.max_steps and self.every_steps:
            self.evaluate(model, state.global_step)  # the end point, even off the eval grid


class GracefulStop(TrainerCallback):
    """Ctrl-C or SIGTERM anywhere in a run. Before the first step (loading, the step-0 evaluation) the run
    ends at once, with nothing saved; once training runs, it finishes the step, saves a checkpoint and stops.
    A second Ctrl-C aborts. Signal handlers live for the `with` block (they can only be set on the main thread).
    Under several processes, the ranks agree at every step's end: a signal to any one stops them all there.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.signum = 0
        self.training = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        self.signum = signum
        if not self.training:
            raise StopRequested(self.requested)
        print(f"\n{self.requested}: finishing this step, then saving a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def on_step_begin(self, args, state, control, **kwargs):
        self.training = True  # from here on a stop waits for the step's end and saves

    def on_step_end(self, args, state, control, **kwargs):
        signum = largest_across_ranks(self.signum)  # the same answer on every rank: all stop, or none
        if signum:
            self.requested = self.requested or signal.Signals(signum).name
            control.should_save = True
            control.should_training_stop = True
