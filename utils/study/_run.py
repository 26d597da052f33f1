"""Running a study: per chain, evaluate the starting model, then train each stage and evaluate after it.

Stages train in this process through utils.training.run_training (what grpo_train.py runs), evaluations
through utils.evaluation.evaluate_model (evaluate.py's), merges through utils.export.export (merge_lora.py's).
In-process training twice in one process works: the tests train two stages and resume in one process, as
tests/training/test_run_lifecycle.py already does (each run builds its own trainer, accelerator state and signal handlers),
and it saves the 10-20 s of imports a subprocess per stage would pay.

Resumable at stage and evaluation granularity: CHAIN/state.json records each finished stage (its trained model)
and each finished evaluation; a stage stopped mid-run continues from its last complete checkpoint (grpo_train's
resume), an evaluation stopped mid-way keeps its samples (evaluate.py's resume). Nothing finished is redone.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.errors import StopRequested, UserError
from utils.files import write_atomic
from utils.runs import LOCK, FolderLock, last_complete_checkpoint, trained_model_folder
from utils.study._outputs import write_outputs
from utils.study._plan import Chain, StudyPlan, load_study_benchmarks, set_up_stage, stage_source, stage_start_model
from utils.study._retention import read_row, retention
from utils.study._spec import Study

RESOLVED, STATE = "study.resolved.yaml", "state.json"


@dataclass
class StudyOutcome:
    folder: Path
    stopped_by: str | None = None  # the signal that stopped it (SIGINT, SIGTERM)
    stopped_in: str = ""  # what was running, in words
    summary: dict[str, Any] = field(default_factory=dict)


class _Stopped(Exception):
    def __init__(self, signal_name: str, where: str) -> None:
        super().__init__(signal_name)
        self.signal_name, self.where = signal_name, where


def run_study(plan: StudyPlan, resume: bool = False, force: bool = False, progress: bool = True,
              log: Callable[[str], None] = print) -> StudyOutcome:
    """Run (or continue) every chain of the study, then write its outputs. A stop returns the outcome with
    `stopped_by` set: what finished is kept, and `--resume` continues."""
    study = plan.study
    with FolderLock(study.folder, "a study", "or give this study another name:"):
        prepare_folder(study, resume, force, log)
        chains = []
        for chain in plan.chains:
            try:
                chains.append(_run_chain(plan, chain, progress, log))
            except _Stopped as stop:
                return StudyOutcome(study.folder, stop.signal_name, stop.where)
        summary = write_outputs(study.folder, study.to_dict(), chains)
    return StudyOutcome(study.folder, summary=summary)


def prepare_folder(study: Study, resume: bool, force: bool, log: Callable[[str], None]) -> None:
    """Refuse to mix two studies in one folder: a folder holding a study needs --resume (the same study file)
    or --force (start over)."""
    folder, resolved = study.folder, study.to_dict()
    saved_file = folder / RESOLVED
    held = [p for p in folder.iterdir() if p.name != LOCK] if folder.is_dir() else []
    if held and force and not resume:
        log(f"--force: removing {folder}'s earlier study")
        for path in held:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif held and not resume:
        raise UserError(f"{folder} already holds a study: pass --resume to continue it or --force to start over")
    elif held:
        saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else None
        changed = _first_change(saved or {}, resolved)
        if changed and not force:  # --resume --force: continue anyway
            raise UserError(f"--resume: {study.path} changed since this study started ({changed}): undo the change, "
                            "or pass --force to start over")
    elif resume:
        log(f"{folder}: nothing to resume: starting the study")
    write_atomic(saved_file, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))


def _first_change(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> str | None:
    """The first key whose value differs (the file's own path may: a study can be resumed from elsewhere)."""
    for key in dict.fromkeys([*saved, *now]):
        if not prefix and key == "path":
            continue
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _first_change(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key}: {a!r} -> {b!r}"
    return None


def _read_state(chain: Chain) -> dict[str, Any]:
    try:
        state = json.loads((chain.folder / STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"stages": {}, "evals": {}}
    return state if isinstance(state, dict) else {"stages": {}, "evals": {}}


def _save_state(chain: Chain, state: dict[str, Any]) -> None:
    write_atomic(chain.folder / STATE, json.dumps(state, indent=1) + "\n")


def _run_chain(plan: StudyPlan, chain: Chain, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    study = plan.study
    state = _read_state(chain)
    state.setdefault("stages", {})
    state.setdefault("evals", {})
    name = f" [{chain.label}]" if chain.label else ""
    benchmarks = None  # read before the chain's first model loads, and only when an evaluation is left
    trained = {int(k): v["model"] for k, v in state["stages"].items()}
    for k in range(len(study.stages) + 1):
        if k:
            stage = study.stages[k - 1]
            if str(k) in state["stages"]:
                log(f"stage {k} ({stage.name}){name}: finished earlier, kept: {trained[k]}")
            else:
                state["stages"][str(k)] = _train_stage(plan, chain, k, trained, progress, log)
                trained[k] = state["stages"][str(k)]["model"]
                _save_state(chain, state)
        if str(k) in state["evals"]:
            log(f"evaluation after stage {k}{name}: finished earlier, kept: {chain.eval_dir(k)}")
            continue
        if benchmarks is None:
            benchmarks = load_study_benchmarks(plan, chain)
        target = chain.model if k == 0 else trained[k]
        state["evals"][str(k)] = _evaluate(plan, chain, k, target, benchmarks, progress, log)
        _save_state(chain, state)
    rows = [read_row("start" if k == 0 else study.stages[k - 1].name, chain.eval_dir(k))
            for k in range(len(study.stages) + 1)]
    tasks = {k: s.task for k, s in enumerate(study.stages, 1) if s.task}
    if study.start_task:
        tasks[0] = study.start_task
    return {"label": chain.label, "model": chain.model, "seed": chain.seed, "folder": str(chain.folder),
            "stages": state["stages"], "evaluations": state["evals"], "retention": retention(rows, tasks, [b.name for b in study.benchmarks])}


def _train_stage(plan: StudyPlan, chain: Chain, k: int, trained: dict[int, str], progress: bool,
                 log: Callable[[str], None]) -> dict[str, Any]:
    from utils.training import run_training

    stage = plan.study.stages[k - 1]
    start = stage_start_model(plan, chain, k, trained)
    if stage.continue_as == "merged":
        start = _merged_start(chain, k, stage, start, log)
    setup = set_up_stage(stage_source(stage, k, chain, start), stage)
    resume = last_complete_checkpoint(setup.run_dir) is not None
    log(f"\n== stage {k} ({stage.name}){f' [{chain.label}]' if chain.label else ''}: {stage.recipe} from {start}"
        + (", continuing its stopped run" if resume else "") + f" -> {setup.run_dir}")
    started = time.perf_counter()
    try:
        outcome = run_training(setup, resume=resume, progress=progress, log=log)
    except (StopRequested, KeyboardInterrupt) as stop:
        raise _Stopped(_signal_name(stop), f"stage {k} ({stage.name}) before its first checkpoint") from None
    if outcome.stopped_by:
        at = f"checkpoint at step {outcome.global_step}" if outcome.last_checkpoint else "before its first checkpoint"
        raise _Stopped(outcome.stopped_by, f"stage {k} ({stage.name}), {at}")
    model = trained_model_folder(setup.run_dir)
    if model is None:
        raise UserError(f"stage {k} ({stage.name}): {setup.run_dir} holds no trained model (no best/ and no complete "
                        "checkpoint): check its recipe's training.save_steps")
    return {"model": str(model), "steps": outcome.global_step, "seconds": round(time.perf_counter() - started, 1),
            "started_from": start}


def _merged_start(chain: Chain, k: int, stage: Any, start: str, log: Callable[[str], None]) -> str:
    """Stage k's starting model with its LoRA adapter merged in (a full model: the stage trains a fresh adapter
    on it). A start that is no adapter is used as it is."""
    from utils.export import ExportOptions, export
    from utils.models import adapter_base

    if adapter_base(start) is None:
        return start
    out = chain.merged_dir(k, stage)
    if not (out / "config.json").is_file():  # the export renames its folder into place only when verified
        log(f"\n== merging {start} before stage {k} ({stage.name}) -> {out}")
        try:
            export(ExportOptions(source=start, out=out, force=True))
        except (StopRequested, KeyboardInterrupt) as stop:
            raise _Stopped(_signal_name(stop), f"merging before stage {k} ({stage.name})") from None
    return str(out)


def _evaluate(plan: StudyPlan, chain: Chain, k: int, target: str, benchmarks: list[Any], progress: bool,
              log: Callable[[str], None]) -> dict[str, Any]:
    from utils.evaluation import EvalRequest, evaluate_model, make_generator, resolve_model

    study, out = plan.study, chain.eval_dir(k)
    spec = resolve_model(target)
    log(f"\n== evaluation after stage {k}{f' [{chain.label}]' if chain.label else ''}: {spec.path} on "
        f"{', '.join(b.name for b in benchmarks)} -> {out}")
    defaults = study.eval
    started = time.perf_counter()
    try:
        generator = None
        for bench, entry in zip(benchmarks, study.benchmarks, strict=True):
            request = EvalRequest(benchmarks=[bench.name], samples=entry.samples or defaults.samples,
                                  seed=defaults.seed, batch_size=defaults.batch_size, dtype=defaults.dtype,
                                  backend=defaults.backend, progress=progress)
            generator = generator or make_generator(spec, request)  # one model load for every benchmark
            evaluate_model(spec, request, out, generator=generator, benchmarks=[bench])
    except (StopRequested, KeyboardInterrupt) as stop:
        raise _Stopped(_signal_name(stop), f"the evaluation after stage {k} (samples so far are kept)") from None
    return {"model": spec.path, "seconds": round(time.perf_counter() - started, 1)}


def _signal_name(stop: BaseException) -> str:
    return "SIGINT" if isinstance(stop, KeyboardInterrupt) else (str(stop) or "SIGTERM")
