"""A study's plan: its chains (starting model x seed), each stage's recipe as it will train, the benchmarks, and
every check a run needs before a model loads (what `--dry-run` prints)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from utils.benchmarks import find_data_dir
from utils.config import RecipeSource, read_recipe, set_path
from utils.errors import UserError
from utils.study._spec import PREVIOUS, START, Study, StudyBenchmark, StudyStage


@dataclass
class Chain:
    """One starting model and seed taken through every stage, in its own folder."""

    label: str  # "" when the study has a single chain
    model: str  # the starting model (a hub id, model folder or LoRA adapter folder)
    seed: int | None
    folder: Path

    def run_name(self, k: int, stage: StudyStage) -> str:
        return f"stage{k}-{stage.name}"

    def run_dir(self, k: int, stage: StudyStage) -> Path:
        return self.folder / self.run_name(k, stage)

    def merged_dir(self, k: int, stage: StudyStage) -> Path:
        """Where stage k's starting model is merged, when the stage continues a merged model."""
        return self.folder / f"{self.run_name(k, stage)}-start-merged"

    def eval_dir(self, k: int) -> Path:
        """The evaluation after stage k (0: the starting model)."""
        return self.folder / "evals" / f"after{k}"


@dataclass
class StudyPlan:
    study: Study
    chains: list[Chain]
    setups: list[Any]  # RunSetup per stage, checked with the first chain's model standing in for earlier stages
    data_dir: Path | None
    benchmark_sources: dict[str, str] = field(default_factory=dict)  # name -> where it is read from, in words

    def source_stage(self, k: int) -> int:
        """The stage whose trained model stage k (1-based) starts from; 0: the chain's starting model."""
        start = self.study.stages[k - 1].start
        if start == START:
            return 0
        if start == PREVIOUS:
            return k - 1
        return next(i for i, s in enumerate(self.study.stages, 1) if s.name == start)


def chains_of(study: Study, first_model: str) -> list[Chain]:
    models = study.models or [first_model]
    seeds: list[int | None] = list(study.seeds) or [None]
    several = len(models) * len(seeds) > 1
    chains = []
    for model in models:
        for seed in seeds:
            parts = ([_model_label(model)] if len(models) > 1 else []) + ([f"seed{seed}"] if len(seeds) > 1 else [])
            label = "-".join(parts) if several else ""
            chains.append(Chain(label, model, seed, study.folder / label if label else study.folder))
    if len({c.folder for c in chains}) < len(chains):
        raise UserError(f"{study.path}: models: two starting models end in the same folder name ({', '.join(models)})")
    return chains


def _model_label(model: str) -> str:
    name = Path(model.rstrip("/")).name or model
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def stage_source(stage: StudyStage, k: int, chain: Chain, model: str, overrides: tuple[str, ...] = ()) -> RecipeSource:
    """Stage k's recipe as the study trains it: its overrides, then the study's own (the starting model, the run
    folder inside the chain's folder, the chain's seed)."""
    where = f"stage {stage.name} ({stage.recipe})"
    try:
        source = read_recipe(stage.recipe, [*stage.overrides, *overrides])
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    study_sets = {"model.name": model, "output.dir": str(chain.folder), "output.run_name": chain.run_name(k, stage)}
    if chain.seed is not None:
        study_sets["training.seed"] = chain.seed
    for key, value in study_sets.items():
        set_path(source.raw, key, value, where=where)
        set_path(source.base, key, value, where=where)
    return source


def set_up_stage(source: RecipeSource, stage: StudyStage) -> Any:
    """The stage's RunSetup: the recipe validated and every path it reads checked (no model loads)."""
    from utils.training import set_up_run

    try:
        return set_up_run(source)
    except UserError as err:
        raise UserError(f"stage {stage.name} ({stage.recipe}): {' '.join(str(err).split())}") from None


def check_study(study: Study) -> StudyPlan:
    """Every check of a study before any model loads: each stage's recipe with its overrides validates and its
    paths exist (earlier stages' models, not trained yet, stand in as the chain's starting model), every starting
    model exists, every benchmark resolves and its local file reads. Returns the plan."""
    chains = chains_of(study, _first_recipe_model(study))
    setups = [set_up_stage(stage_source(stage, k, chains[0], chains[0].model), stage)
              for k, stage in enumerate(study.stages, 1)]
    _check_models(study, chains[1:])
    data_dir = find_data_dir(study.data_dir)
    plan = StudyPlan(study, chains, setups, data_dir)
    plan.benchmark_sources = {b.name: _check_benchmark(b, plan) for b in study.benchmarks}
    return plan


def _first_recipe_model(study: Study) -> str:
    """Stage 1's recipe's model.name: the starting model when the study names none."""
    stage = study.stages[0]
    try:
        model = read_recipe(stage.recipe, stage.overrides).raw.get("model")
    except UserError as err:
        raise UserError(f"stage {stage.name} ({stage.recipe}): {err}") from None
    name = model.get("name") if isinstance(model, dict) else None
    from utils.config import ModelSection

    return str(name or ModelSection().name)


def _check_models(study: Study, chains: list[Chain]) -> None:
    from utils.models import check_model_source

    for chain in chains:
        try:
            check_model_source(chain.model)
        except UserError as err:
            raise UserError(f"{study.path}: models: {err}") from None


def _check_benchmark(bench: StudyBenchmark, plan: StudyPlan) -> str:
    if bench.split_of:
        stage = plan.study.stage_named(bench.split_of)
        data = plan.setups[plan.study.stages.index(stage)].recipe.data
        return f"validation split of stage {stage.name} ({data.dataset}, {data.validation} held out)"
    from utils.data import benchmark_source, check_benchmark

    where = f"{plan.study.path}: benchmarks: {bench.name}"
    return check_benchmark(*benchmark_source(bench.source, plan.data_dir, where), where)


def load_study_benchmarks(plan: StudyPlan, chain: Chain) -> list[Any]:
    """Every benchmark's problems, as each evaluation of the chain asks them (read once, before any model loads).
    A stage's validation split is made exactly as that stage's training makes it (its recipe as set up, the
    starting model's tokenizer), so none of its problems is trained on."""
    from utils.evaluation import EvalRequest, load_benchmarks, resolve_model

    study, spec = plan.study, resolve_model(chain.model)
    loaded = []
    for bench in study.benchmarks:
        stage_index = study.stages.index(study.stage_named(bench.split_of)) if bench.split_of else 0
        prompt_format = None if bench.split_of else (bench.prompt_format or study.eval.prompt_format)
        request = EvalRequest(benchmarks=[bench.source], limit=bench.limit or study.eval.limit,
                              max_new_tokens=bench.max_new_tokens or study.eval.max_new_tokens,
                              prompt_format=prompt_format, data_dir=plan.data_dir)
        with _named(bench):
            [rows] = load_benchmarks(replace(spec, recipe=plan.setups[stage_index].recipe), request)
        rows.name = bench.name  # the column and folder name, whatever the source
        loaded.append(rows)
    return loaded


@contextlib.contextmanager
def _named(bench: StudyBenchmark) -> Any:
    try:
        yield
    except UserError as err:
        raise UserError(f"benchmarks: {bench.name}: {' '.join(str(err).split())}") from None


def format_plan(plan: StudyPlan) -> str:
    study = plan.study
    lines = [f"Study      {study.name} ({study.path}) -> {study.folder}"]
    for i, chain in enumerate(plan.chains):
        seed = f", training.seed {chain.seed}" if chain.seed is not None else ""
        lines.append(f"{'Chains' if i == 0 else '':<11}{chain.label or 'one chain'}: from {chain.model}{seed}"
                     + (f" -> {chain.folder}" if chain.label else ""))
    for k, (stage, setup) in enumerate(zip(study.stages, plan.setups, strict=True), 1):
        src = plan.source_stage(k)
        origin = "the starting model" if src == 0 else f"stage {study.stages[src - 1].name}'s trained model"
        how = ", merged first" if stage.continue_as == "merged" else (", its adapter trained on" if src else "")
        steps = setup.config.max_steps
        sets = "".join(f" --set {s}" for s in stage.overrides)
        task = f"; task: {stage.task}" if stage.task else ""
        lines.append(f"{'Stages' if k == 1 else '':<11}{k}. {stage.name}: {stage.recipe}{sets} ({steps} steps{task}) "
                     f"from {origin}{how}")
    for i, bench in enumerate(study.benchmarks):
        samples = bench.samples or study.eval.samples
        tokens = bench.max_new_tokens or study.eval.max_new_tokens
        limit = bench.limit or study.eval.limit
        detail = ", ".join(filter(None, [f"first {limit}" if limit else "", f"{tokens} tokens" if tokens else "",
                                         "greedy" if samples == 1 else f"{samples} samples"]))
        lines.append(f"{'Benchmarks' if i == 0 else '':<11}{bench.name} <- {plan.benchmark_sources[bench.name]} "
                     f"({detail})")
    rows = len(study.stages) + 1
    lines.append(f"Evaluated  before stage 1 and after each stage: {rows} x {len(study.benchmarks)} per chain, "
                 f"{len(plan.chains)} chain(s)")
    if study.start_task or any(s.task for s in study.stages):
        tasks = ([f"start: {study.start_task}"] if study.start_task else []) + \
                [f"{s.name}: {s.task}" for s in study.stages if s.task]
        lines.append(f"Tasks      {', '.join(tasks)} (backward transfer)")
    return "\n".join(lines)


def stage_start_model(plan: StudyPlan, chain: Chain, k: int, trained: dict[int, str]) -> str:
    """The model stage k starts from: the chain's start (k's source 0) or the source stage's trained folder."""
    src = plan.source_stage(k)
    return chain.model if src == 0 else trained[src]

