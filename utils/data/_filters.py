"""Filters, in the order they run (FILTERS), each a step that records the rows it removed.

The two slow ones (gold answers the verifier can read, prompt tokens) are computed ahead on threads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from utils.answers import is_parseable
from utils.config import DataSection, FiltersSection, PromptSection
from utils.data._adapters import ROLES, Adapter
from utils.data._cache import stable_hash, tokenizer_fingerprint
from utils.data._decontaminate import NgramIndex, build_ngram_index
from utils.data._prompts import PromptTokenCounter
from utils.data._report import FilterStep


@dataclass
class FilterContext:
    filters: FiltersSection
    prompt: PromptSection
    tokenizer: Any = None
    ngram_index: NgramIndex | None = None
    roles: set[str] = field(default_factory=lambda: set(ROLES))  # roles the source's columns provide
    progress: bool = True
    # The two slow filters, computed ahead on threads for all rows (see prefetch)
    parse_verdicts: Future[dict[str, bool]] | None = None
    token_verdicts: Future[dict[str, bool]] | None = None

    def prefetch(self, ds: Any) -> None:
        """Start the gold-answer checks and the prompt-token decisions for every row, on two threads.

        The answer checks mostly wait on the verifier's worker process and tokenizers encode in Rust
        without the GIL, so on two cores both run while the cheap filters do: the pass takes about as
        long as the slower of the two instead of their sum. Rows an earlier filter drops were checked
        for nothing: a few percent more work for much less wall time.
        """
        limit = self.filters.max_prompt_tokens
        if self.filters.parseable_answer and self.parse_verdicts is None:
            answers = [a for a in ds["answer"] if a]
            self.parse_verdicts = _in_thread(lambda: parseable_verdicts(answers, self.progress), "gold-answers")
        if limit is not None and self.tokenizer is not None and self.token_verdicts is None:
            problems = list(ds["problem"])
            counter = PromptTokenCounter(self.tokenizer, self.prompt.format, self.prompt.system)

            def decide() -> dict[str, bool]:
                verdicts: dict[str, bool] = {}
                for start in range(0, len(problems), 1000):
                    chunk = problems[start:start + 1000]
                    verdicts.update(zip(chunk, counter.within(chunk, limit), strict=True))
                return verdicts

            self.token_verdicts = _in_thread(decide, "prompt-tokens")


def _in_thread(fn: Callable[[], Any], name: str) -> Future:
    executor = ThreadPoolExecutor(1, thread_name_prefix=name)
    future = executor.submit(fn)
    executor.shutdown(wait=False)  # the thread ends with its one task
    return future


def _filter(ds: Any, keep: Callable[..., list[bool]], columns: list[str], desc: str, tag: Any) -> Any:
    return ds.filter(keep, batched=True, input_columns=columns, keep_in_memory=True, load_from_cache_file=False,
                     new_fingerprint=stable_hash([ds._fingerprint, tag]), desc=desc)


def _step_has_answer(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    return _filter(ds, lambda p, a: [bool(x.strip()) and bool(y) for x, y in zip(p, a, strict=True)], ["problem", "answer"],
                   "Filter: problem and gold answer present", "has_answer")


def _skipped(step: FilterStep, ctx: FilterContext, off: str | None, role: str, column: str | None = None) -> bool:
    """Mark the step skipped when its setting is off (`off` says how) or the source lacks its column."""
    step.skipped = off or (None if role in ctx.roles else f"no {column or role} column")
    return step.skipped is not None


def _step_question_types(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    drop = {t.lower() for t in ctx.filters.drop_question_types}
    if _skipped(step, ctx, None if drop else "nothing to drop", "question_type"):
        return ds
    return _filter(ds, lambda q: [t.lower() not in drop for t in q], ["question_type"],
                   "Filter: question types", ["qt", sorted(drop)])


def _step_problem_types(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    keep = ctx.filters.keep_problem_types
    if _skipped(step, ctx, "all kept" if keep is None else None, "problem_type"):
        return ds
    wanted = {t.lower() for t in keep}
    return _filter(ds, lambda p: [t.lower() in wanted for t in p], ["problem_type"], "Filter: problem types",
                   ["pt", sorted(wanted)])


def _step_correctness(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    minimum = ctx.filters.min_correctness_count
    if _skipped(step, ctx, "off" if minimum is None else None, "correctness_count"):
        return ds
    return _filter(ds, lambda c: [v is not None and v >= minimum for v in c], ["correctness_count"],
                   "Filter: correctness count", ["cc", minimum])


def _step_complete(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    off = None if ctx.filters.complete_reasoning_only else "off"
    if _skipped(step, ctx, off, "reasoning_complete", "is_reasoning_complete"):
        return ds
    return _filter(ds, lambda c: [bool(v) for v in c], ["reasoning_complete"], "Filter: complete reasoning", "rc")


# Gold answers are checked once, off the training path: a generous bound, so a loaded machine cannot
# time out a sound answer and change which rows are kept (the verifier refuses pathological input itself).
PARSE_TIMEOUT_S = 5.0


def parseable_verdicts(golds: Iterable[str], progress: bool = True) -> dict[str, bool]:
    """is_parseable for each distinct gold answer (answers repeat a lot: "2", "\\frac{1}{2}")."""
    from tqdm.auto import tqdm

    distinct = list(dict.fromkeys(golds))
    # One at a time, on purpose: one verifier process keeps one core busy while the prompt-token
    # filter's prefetch uses the other; parallel checks measured slower on 2 shared cores.
    bar = tqdm(distinct, desc="Checking gold answers", disable=not progress or len(distinct) < 5000)
    return {g: bool(is_parseable(g, timeout=PARSE_TIMEOUT_S)) for g in bar}


def _step_parseable(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    if not ctx.filters.parseable_answer:
        step.skipped = "off"
        return ds
    verdicts = ctx.parse_verdicts.result() if ctx.parse_verdicts is not None else {}
    missing = [a for a in ds["answer"] if a not in verdicts]
    if missing:
        verdicts.update(parseable_verdicts(missing, ctx.progress))
    return _filter(ds, lambda answers: [verdicts[a] for a in answers], ["answer"], "Filter: parseable gold answers",
                   "parse")


def normalized_problem(text: str) -> str:
    """Exact-duplicate key: whitespace collapsed, case kept (`x` and `X` can be different problems)."""
    return " ".join(text.split())


def _step_dedupe(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    if not ctx.filters.dedupe:
        step.skipped = "off"
        return ds
    seen: set[int] = set()

    def keep(problems: list[str]) -> list[bool]:  # first occurrence wins: runs in order, one process
        out = []
        for p in problems:
            key = hash(normalized_problem(p))
            out.append(key not in seen)
            seen.add(key)
        return out

    return _filter(ds, keep, ["problem"], "Filter: exact duplicates", "dedupe")


def _step_decontaminate(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    index = ctx.ngram_index
    if index is None:
        step.skipped = "no evaluation sets"
        return ds
    hits: Counter[str] = Counter()

    def keep(problems: list[str]) -> list[bool]:
        out = []
        for p in problems:
            label = index.match(p)
            if label is not None:
                hits[label] += 1
            out.append(label is None)
        return out

    result = _filter(ds, keep, ["problem"], "Filter: decontamination", ["decon", index.n, sorted(index.sizes)])
    step.detail = dict(sorted(hits.items()))
    return result


def _step_prompt_tokens(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    limit = ctx.filters.max_prompt_tokens
    if limit is None:
        step.skipped = "off"
        return ds
    if ctx.tokenizer is None:
        # Documented choice: a run without a tokenizer (explore_data.py without a model) still works;
        # the report says the limit was not applied. The training code always passes its tokenizer.
        step.skipped = "no tokenizer given"
        return ds
    tag = ["tok", limit, ctx.prompt.format, ctx.prompt.system, tokenizer_fingerprint(ctx.tokenizer)]
    verdicts = ctx.token_verdicts.result() if ctx.token_verdicts is not None else {}
    counter = PromptTokenCounter(ctx.tokenizer, ctx.prompt.format, ctx.prompt.system)

    def keep(problems: list[str]) -> list[bool]:
        missing = [p for p in problems if p not in verdicts]  # all of them when nothing was prefetched
        if missing:
            verdicts.update(zip(missing, counter.within(missing, limit), strict=True))
        return [verdicts[p] for p in problems]

    return _filter(ds, keep, ["problem"], "Filter: prompt tokens", tag)


# name, recipe setting shown in the report, step. Order: cheap and certain first, the tokenizer last.
def _on_off(value: bool) -> str:
    return "on" if value else "off"


FILTERS: list[tuple[str, Callable[[FiltersSection], str], Callable[..., Any]]] = [
    ("has_answer", lambda f: "always", _step_has_answer),
    ("question_types", lambda f: "drop " + (", ".join(f.drop_question_types) or "none"), _step_question_types),
    ("problem_types", lambda f: "keep " + (", ".join(f.keep_problem_types) if f.keep_problem_types is not None
                                           else "all"), _step_problem_types),
    ("min_correctness_count", lambda f: "off" if f.min_correctness_count is None else f">= {f.min_correctness_count}",
     _step_correctness),
    ("complete_reasoning", lambda f: _on_off(f.complete_reasoning_only), _step_complete),
    ("parseable_answer", lambda f: _on_off(f.parseable_answer), _step_parseable),
    ("dedupe", lambda f: _on_off(f.dedupe), _step_dedupe),
    ("decontaminate", lambda f: f"{', '.join(f.decontaminate)} ({f.decontaminate_ngram}-grams)" if f.decontaminate
     else "off", _step_decontaminate),
    ("max_prompt_tokens", lambda f: "off" if f.max_prompt_tokens is None else f"<= {f.max_prompt_tokens}",
     _step_prompt_tokens),
]
"""Filters in the order they run (cheap and certain first, the tokenizer last): name, setting text, step."""


def apply_filters(ds: Any, ctx: FilterContext, only: str | None = None) -> tuple[Any, list[FilterStep]]:
    """Run the filters in order (or just `only`); each step records the rows it removed."""
    if only is None:
        ctx.prefetch(ds)
    steps = []
    for name, setting, run in FILTERS:
        if only is not None and name != only:
            continue
        step = FilterStep(name, setting(ctx.filters))
        before, start = len(ds), time.perf_counter()
        ds = run(ds, ctx, step)
        step.removed, step.remaining = before - len(ds), len(ds)
        step.seconds = round(time.perf_counter() - start, 3)
        steps.append(step)
    return ds, steps


def make_filter_context(data: DataSection, prompt: PromptSection, tokenizer: Any = None,
                        adapter: Adapter | None = None, progress: bool = True) -> FilterContext:
    index = None
    if data.filters.decontaminate:
        index, _ = build_ngram_index(data.filters.decontaminate, data.filters.decontaminate_ngram)
    roles = set(adapter.mapping) if adapter is not None else set(ROLES)
    return FilterContext(data.filters, prompt, tokenizer, index, roles, progress)

