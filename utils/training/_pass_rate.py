"""scripts/pass_rate.py's job: the starting model's pass rate on each training problem, k samples each.

The problems are the recipe's train split as training sees it (its filters, the prompt-length bound training
adds, split and subset; not the pass-rate filter or curriculum, which read what this writes), in its prompt
format, sampled as training samples (temperature, top_p, max_completion_length: utils.config.sampling_settings)
through evaluation's generators (vLLM where installed, batched transformers otherwise), each sample scored by
the accuracy reward. Lines go to the keyed file (utils.data.pass_rate_path) batch by batch, so a rerun
continues where an interrupted one stopped; a histogram PNG and a summary line end it.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from utils.config import CurriculumSection, Recipe, sampling_settings, trl_default
from utils.data import (
    DEFAULT_BAND,
    DEFAULT_K,
    PassRates,
    load_training_data,
    pass_rate_key,
    pass_rate_path,
    problem_key,
    read_pass_rates,
    render_prompts,
)
from utils.errors import UserError
from utils.evaluation import EvalRequest, Sampling, check_request, eval_tokenizer, make_generator, resolve_model
from utils.files import staged, write_atomic
from utils.rewards import accuracy
from utils.training._setup import bound_prompt_length

# Sampling settings the generators cannot apply, and the value that means "not used".
_UNSUPPORTED = {"top_k": (0, None), "min_p": (None,), "repetition_penalty": (1.0,), "generation_kwargs": (None, {})}


@dataclass
class PassRateRequest:
    """What a user asked pass_rate.py for."""

    k: int = DEFAULT_K
    limit: int | None = None  # the first N training problems
    out: Path | None = None  # None: the keyed file in .cache/pass_rates/
    batch_size: int = 64  # sequences per transformers generate() call (k per problem)
    backend: str = "auto"
    progress: bool = True


@dataclass
class PassRateSummary:
    path: Path
    png: Path
    k: int
    problems: int  # training problems with a pass rate
    mean: float
    at_zero: float  # share of problems never solved
    at_one: float  # share always solved
    in_band: float  # share with low < p < high
    band: tuple[float, float]
    scored_now: int

    def line(self) -> str:
        low, high = self.band
        return (f"{self.problems} problems, k={self.k}: mean pass rate {self.mean:.3f}; p=0: {self.at_zero:.1%}; "
                f"p=1: {self.at_one:.1%}; {low:g} < p < {high:g}: {self.in_band:.1%} ({self.scored_now} scored now)")


def scoring_recipe(recipe: Recipe) -> Recipe:
    """The recipe as training would load its data, without what reads the pass rates: the same rows, the same key."""
    scoring = copy.deepcopy(recipe)
    scoring.data.filters.pass_rate = scoring.data.filters.pass_rate_file = None
    scoring.data.curriculum = CurriculumSection()
    bound_prompt_length(scoring, sampling_settings(scoring.training)["max_completion_length"])  # as set_up_run
    return scoring


def training_sampling(recipe: Recipe) -> Sampling:
    """The recipe's sampling; a setting the generators cannot apply is a one-line error, not a silent change."""
    settings = sampling_settings(recipe.training)
    for name, unused in _UNSUPPORTED.items():
        if settings[name] not in unused:
            raise UserError(f"training.{name}: {settings[name]!r}: pass_rate.py samples with temperature, top_p and "
                            f"max_completion_length only (remove training.{name} to measure pass rates)")
    seed = recipe.training.get("seed", trl_default("seed"))
    return Sampling(int(settings["max_completion_length"]), do_sample=True, temperature=float(settings["temperature"]),
                    top_p=float(settings["top_p"]), seed=int(seed))


class PassRateJob:
    """Pass rates for `recipe`'s training problems into the request's file; `generator` (a test's, or a loaded
    one) replaces the backend's."""

    def __init__(self, recipe: Recipe, request: PassRateRequest, generator: Any = None) -> None:
        _check(request)
        self.recipe, self.request, self.generator = scoring_recipe(recipe), request, generator
        self.sampling = training_sampling(self.recipe)
        self.path = Path(request.out) if request.out else pass_rate_path(self.recipe, request.k)
        self.spec = resolve_model(self.recipe.model.name)

    def problems(self) -> list[dict[str, Any]]:
        """The training problems, distinct, in the train split's order (the first --limit of them)."""
        tokenizer = self.generator.tokenizer if self.generator is not None else eval_tokenizer(self.spec)
        train = load_training_data(self.recipe, tokenizer).train
        rows: dict[str, dict[str, Any]] = {}
        for row in train:
            rows.setdefault(problem_key(row["problem"], row["answer"]), row)
            if self.request.limit is not None and len(rows) >= self.request.limit:
                break
        return [{**row, "key": key} for key, row in rows.items()]

    def run(self) -> PassRateSummary:
        problems = self.problems()  # data problems surface before a model loads
        self._check_file()
        done = {r["key"] for r in read_pass_rates(self.path, repair=True).records}
        pending = [row for row in problems if row["key"] not in done]
        if pending:
            generator = self.generator or make_generator(self.spec, self._eval_request())
            self._score_all(generator, pending)
        rates = read_pass_rates(self.path)
        wanted = {row["key"] for row in problems}
        summary = summarize(rates, wanted, self.recipe, len(pending), self.request.k)
        histogram(summary, [r["pass_rate"] for r in rates.records if r["key"] in wanted and r["pass_rate"] is not None],
                  self.spec.label)
        return summary

    def _eval_request(self) -> EvalRequest:
        return EvalRequest(benchmarks=[], batch_size=self.request.batch_size, backend=self.request.backend,
                           progress=self.request.progress)

    def _check_file(self) -> None:
        """The file (and its sidecar of key inputs) belongs to these settings, or is new."""
        key, inputs = pass_rate_key(self.recipe)
        settings = {"key": key, "k": self.request.k, **inputs}
        sidecar = self.path.with_suffix(".json")
        if sidecar.is_file():
            saved = json.loads(sidecar.read_text(encoding="utf-8"))
            changed = [name for name in settings if json.dumps(saved.get(name), sort_keys=True, default=str)
                       != json.dumps(settings[name], sort_keys=True, default=str)]
            if changed:
                raise UserError(f"{self.path}: holds pass rates made with other {changed[0]} settings: choose "
                                "another --out, or delete it to start over")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(sidecar, json.dumps(settings, indent=1, default=str) + "\n")

    def _score_all(self, generator: Any, pending: list[dict[str, Any]]) -> None:
        from tqdm.auto import tqdm

        k = self.request.k
        texts = render_prompts([row["prompt"] for row in pending], generator.tokenizer)
        order = sorted(range(len(pending)), key=lambda i: len(texts[i]))  # similar lengths pad little
        per_batch = max(1, generator.batch_size // k)
        bar = tqdm(total=len(pending), desc="pass rates", unit="problem", dynamic_ncols=True, file=sys.stderr,
                   disable=not self.request.progress)
        rates: list[float] = []
        try:
            with self.path.open("a", encoding="utf-8") as out:
                for start in range(0, len(order), per_batch):
                    idx = order[start:start + per_batch]
                    sampling = replace(self.sampling, seed=self.sampling.seed + start)
                    records = score_batch(generator, [pending[i] for i in idx], [texts[i] for i in idx], k, sampling)
                    for record in records:  # one write per line: an interruption lands between lines
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
                    rates += [r["pass_rate"] for r in records if r["pass_rate"] is not None]
                    bar.update(len(records))
                    bar.set_postfix(mean=f"{sum(rates) / max(1, len(rates)):.3f}")
        finally:
            bar.close()


def _check(request: PassRateRequest) -> None:
    if request.k < 1:
        raise UserError(f"--k: must be at least 1 sample per problem, got {request.k}")
    if request.limit is not None and request.limit < 1:
        raise UserError(f"--limit: must be at least 1, got {request.limit}")
    check_request(EvalRequest(benchmarks=[], batch_size=request.batch_size, backend=request.backend))


def score_batch(generator: Any, rows: list[dict[str, Any]], texts: list[str], k: int,
                sampling: Sampling) -> list[dict[str, Any]]:
    """k samples of each problem in one generate call, each scored by the accuracy reward; a record per problem."""
    generated = generator.generate_batch([text for text in texts for _ in range(k)], sampling)
    verdicts = accuracy([], [g.text for g in generated], answer=[row["answer"] for row in rows for _ in range(k)])
    records = []
    for i, row in enumerate(rows):
        mine, outputs = verdicts[i * k:(i + 1) * k], generated[i * k:(i + 1) * k]
        decided = [v for v in mine if v is not None]  # None: an unreadable gold or an undecided check
        correct = int(sum(decided))
        records.append({"key": row["key"], "id": row["id"], "answer": row["answer"], "k": k, "correct": correct,
                        "decided": len(decided), "pass_rate": correct / len(decided) if decided else None,
                        "truncated": sum(g.truncated for g in outputs),
                        "mean_tokens": round(sum(g.tokens for g in outputs) / k, 1)})
    return records


def summarize(rates: PassRates, wanted: set[str], recipe: Recipe, scored_now: int, k: int) -> PassRateSummary:
    values = [r["pass_rate"] for r in rates.records if r["key"] in wanted and r["pass_rate"] is not None]
    band = tuple(recipe.data.filters.pass_rate or DEFAULT_BAND)
    n = max(1, len(values))
    return PassRateSummary(rates.path, rates.path.with_suffix(".png"), k, len(values), sum(values) / n,
                           sum(v == 0 for v in values) / n, sum(v == 1 for v in values) / n,
                           sum(band[0] < v < band[1] for v in values) / n, (band[0], band[1]), scored_now)


def histogram(summary: PassRateSummary, values: list[float], model: str) -> Path:
    """One bar per pass rate a problem can have (0, 1/k, ..., 1), the kept band shaded."""
    import matplotlib

    matplotlib.use("Agg")  # no display where pass rates are made
    import matplotlib.pyplot as plt

    k = summary.k
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=[(j - 0.5) / k for j in range(k + 2)], color="tab:blue", edgecolor="white", rwidth=0.85)
    ax.axvspan(*summary.band, color="tab:green", alpha=0.12, label=f"{summary.band[0]:g} < p < {summary.band[1]:g}")
    ax.set_xlim(-0.5 / k, 1 + 0.5 / k)
    ax.set_xlabel(f"pass rate ({k} samples per problem)")
    ax.set_ylabel("problems")
    ax.set_title(f"{model}: {summary.problems} training problems, mean {summary.mean:.3f}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with staged(summary.png) as tmp:  # a viewer never sees a half-written image
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return summary.png
