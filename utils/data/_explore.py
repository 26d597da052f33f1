"""Look at a dataset before training on it: schema, sizes, samples, distributions, filters (explore_data.py).

Everything goes through the same loader, adapters and filters as training (utils.data), so what the
report says is what a run would get. Output: a markdown report plus PNG charts in one folder.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.config import DataSection, PromptSection
from utils.data._filters import FILTERS, apply_filters, make_filter_context, parseable_verdicts
from utils.data._load import LoadedData, load_adapted
from utils.data._prompts import render_prompt
from utils.data._readers import LONG_PASS_ROWS, progress_bars
from utils.data._report import DataReport, FilterStep
from utils.data._sources import DATA_EXTENSIONS, Source
from utils.data._split import format_rows, no_rows_left, split_rows
from utils.errors import UserError

TOKEN_SAMPLE = 5000  # rows whose problems/solutions are tokenized for length percentiles
PERCENTILES = (50, 90, 99)

# ---------------------------------------------------------------------------------------------
# Answer kinds: a coarse breakdown of what the gold answers look like (statistics only; the answer
# itself is read by utils.answers).

_INTEGER = re.compile(r"^[-+]?\d{1,3}(,\d{3})+$|^[-+]?\d+$")
_DECIMAL = re.compile(r"^[-+]?\d*\.\d+$")
_FRACTION = re.compile(r"^[-+]?(\\[dt]?frac\{-?\d+\}\{\d+\}|\d+/\d+)$")
_LETTER = re.compile(r"^\(?\\?(text\{)?\(?[A-Ea-e]\)?\}?\)?$")
_PROSE = re.compile(r"^[A-Za-z][A-Za-z ,'\-]*$")


def answer_kind(gold: str) -> str:
    """integer, decimal, fraction, choice letter, tuple/interval, set, equation, text, proof, expression, missing."""
    g = gold.strip().strip("$").strip()
    if not g:
        return "missing"
    if g.lower() in ("proof", "notfound", "not found"):
        return "proof / none"
    if _INTEGER.match(g):
        return "integer"
    if _DECIMAL.match(g):
        return "decimal"
    if _FRACTION.match(g.replace(" ", "")):
        return "fraction"
    if _LETTER.match(g):
        return "choice letter"
    if g[0] in "([" and g[-1] in ")]" and "," in g or g.startswith(("\\left(", "\\left[")):
        return "tuple / interval"
    if g.startswith(("\\{", "\\left\\{")):
        return "set"
    if "=" in g:
        return "equation"
    if _PROSE.match(g) and len(g) > 1:
        return "text"
    return "expression"


# ---------------------------------------------------------------------------------------------


@dataclass
class Exploration:
    """What explore() found; `markdown()` is the report."""

    title: str
    source: str = ""
    format: str = ""
    features: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # every column of the source, read or not
    split_sizes: dict[str, int] = field(default_factory=dict)
    rows_loaded: int = 0
    gold_from: dict[str, int] = field(default_factory=dict)
    distributions: dict[str, Counter[str]] = field(default_factory=dict)
    answer_kinds: Counter[str] = field(default_factory=Counter)
    parse_rate: float | None = None
    unparseable_examples: list[str] = field(default_factory=list)
    length_unit: str = "characters"
    lengths: dict[str, dict[str, float]] = field(default_factory=dict)
    sequential: list[FilterStep] = field(default_factory=list)
    alone: dict[str, int] = field(default_factory=dict)
    report: DataReport | None = None
    samples: list[dict[str, str]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        out = [f"# Data exploration: {self.title}", ""]
        out += [f"- source: `{self.source}`", f"- schema adapter: {self.format}",
                f"- rows loaded: {self.rows_loaded}",
                "- gold answers from: " + ", ".join(f"{k} {v}" for k, v in self.gold_from.items()),
                f"- time: {self.seconds:.1f} s", ""]
        out += ["## Schema", "", f"{len(self.columns)} columns: " + ", ".join(f"`{c}`" for c in self.columns) + ".",
                "Read for training (the others, such as OpenR1's generations, are never loaded):", "",
                "| column | type |", "|---|---|"]
        out += [f"| `{name}` | `{kind}` |" for name, kind in self.features.items()]
        out += ["", "## Split sizes", "", "| split | rows |", "|---|---:|"]
        out += [f"| source split `{name}` | {n} |" for name, n in self.split_sizes.items()]
        if self.report is not None:
            r = self.report
            out += [f"| after filters | {r.rows_after_filters} |",
                    f"| validation ({r.validation_from}) | {r.validation_rows} |",
                    f"| train{' (subset)' if r.subset else ''} | {r.train_rows} |"]
        out += ["", "## Filters", "",
                "Sequential: each filter applied after the ones above it (what a run does). "
                "Alone: what the filter removes from all loaded rows by itself.", "",
                "| filter | setting | removed (sequential) | remaining | removed alone | note |",
                "|---|---|---:|---:|---:|---|"]
        for s in self.sequential:
            alone = self.alone.get(s.name, "")
            removed = "" if s.skipped else s.removed
            note = f"skipped: {s.skipped}" if s.skipped else ", ".join(f"{k}: {v}" for k, v in s.detail.items())
            out.append(f"| {s.name} | `{s.setting}` | {removed} | {'' if s.skipped else s.remaining} | {alone} | {note} |")
        out += ["", "## Gold answers", ""]
        if self.parse_rate is not None:
            out.append(f"Parse rate (utils.answers.is_parseable): **{100 * self.parse_rate:.2f}%** of {self.rows_loaded}")
            if self.unparseable_examples:
                out.append("Unparseable examples: " + ", ".join(f"`{e}`" for e in self.unparseable_examples))
            out.append("")
        out += _counter_table("answer kind", self.answer_kinds, self.rows_loaded)
        for name, counter in self.distributions.items():
            out += ["", f"## {name}", ""] + _counter_table(name, counter, self.rows_loaded)
        out += ["", f"## Lengths ({self.length_unit})", "",
                "| text | n | mean | " + " | ".join(f"p{p}" for p in PERCENTILES) + " | max |",
                "|---|---:|---:|" + "---:|" * len(PERCENTILES) + "---:|"]
        for name, stats in self.lengths.items():
            cells = " | ".join(f"{stats[f'p{p}']:.0f}" for p in PERCENTILES)
            out.append(f"| {name} | {stats['n']:.0f} | {stats['mean']:.0f} | {cells} | {stats['max']:.0f} |")
        out += ["", "## Sample prompts", ""]
        for i, sample in enumerate(self.samples, 1):
            out += [f"### {i}. `{sample['id']}`, gold answer `{sample['answer']}`", "", "```text",
                    sample["rendered"], "```", ""]
        if self.charts:
            out += ["## Charts", ""] + [f"![{Path(c).stem}]({Path(c).name})" for c in self.charts]
        return "\n".join(out) + "\n"


def _counter_table(name: str, counter: Counter[str], total: int, top: int = 25) -> list[str]:
    rows = [f"| {name} | rows | share |", "|---|---:|---:|"]
    for key, n in counter.most_common(top):
        rows.append(f"| {key or '(empty)'} | {n} | {100 * n / max(total, 1):.1f}% |")
    if len(counter) > top:
        rest = sum(n for _, n in counter.most_common()[top:])
        rows.append(f"| ({len(counter) - top} more) | {rest} | {100 * rest / max(total, 1):.1f}% |")
    return rows


def split_sizes(source: Source) -> dict[str, int]:
    """Rows per split the source offers (files: counted without parsing every row where possible)."""
    if source.kind != "files":
        return {}
    sizes: dict[str, int] = {}
    groups = {source.split: source.files}
    if source.path and source.path.is_dir():
        from datasets.data_files import DataFilesDict, get_data_patterns

        try:
            resolved = DataFilesDict.from_patterns(get_data_patterns(str(source.path)), base_path=str(source.path))
            groups = {str(k): [Path(f) for f in v if Path(f).suffix.lower() in DATA_EXTENSIONS]
                      for k, v in resolved.items()}
        except Exception:  # the split we loaded is what there is
            pass
    for split, files in groups.items():
        if files:
            sizes[split] = sum(_count_rows(p) for p in files)
    return sizes


def _count_rows(path: Path) -> int:
    kind = DATA_EXTENSIONS[path.suffix.lower()]
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if kind == "json":
        try:
            document = json.loads(path.read_bytes())
        except ValueError:
            document = None
        if isinstance(document, list):
            return len(document)
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _stats(values: list[int]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"n": 0, "mean": 0, "max": 0, **{f"p{p}": 0 for p in PERCENTILES}}
    arr = np.asarray(values)
    return {"n": len(values), "mean": float(arr.mean()), "max": float(arr.max()),
            **{f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES}}


def _lengths(rows: Any, tokenizer: Any, seed: int) -> tuple[str, dict[str, dict[str, float]], dict[str, list[int]]]:
    """Length percentiles of problems and solutions: tokens on a seeded sample with a tokenizer, else characters."""
    problems, solutions = rows["problem"], rows["solution"]
    if tokenizer is None:
        raw = {"problem": [len(p) for p in problems], "solution": [len(s) for s in solutions if s]}
        unit = "characters (no tokenizer given: --tokenizer PATH or a recipe with a local model)"
    else:
        from tqdm.auto import tqdm

        idx = sorted(random.Random(seed).sample(range(len(problems)), min(TOKEN_SAMPLE, len(problems))))
        raw = {"problem": [], "solution": []}
        for start in tqdm(range(0, len(idx), 500), desc="Tokenizing for lengths", disable=len(idx) < 2000):
            chunk = idx[start:start + 500]
            for name, texts in (("problem", [problems[i] for i in chunk]),
                                ("solution", [solutions[i] for i in chunk if solutions[i]])):
                if texts:
                    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
                    raw[name] += [len(x) for x in ids]
        unit = f"tokens, {getattr(tokenizer, 'name_or_path', '') or 'tokenizer'}" + (
            f", seeded sample of {len(idx)} rows" if len(idx) < len(problems) else "")
    return unit, {k: _stats(v) for k, v in raw.items() if v}, raw


def _render(messages: list[dict[str, str]], tokenizer: Any) -> str:
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return render_prompt(messages, tokenizer)
    return "\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def _charts(out_dir: Path, exp: Exploration, raw_lengths: dict[str, list[int]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    paths = []
    unit = re.split(r"[ ,]", exp.length_unit, maxsplit=1)[0]  # "tokens, NAME" -> "tokens"
    for name, values in raw_lengths.items():
        if not values:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(values, bins=60, color="#4c72b0")
        label = f"{name} length ({unit})"
        ax.set_xlabel(label)
        ax.set_ylabel("rows")
        ax.set_title(f"{name} length")
        fig.tight_layout()
        path = out_dir / f"{name}_length.png"
        fig.savefig(path, dpi=100, metadata={"Description": label})  # the axis label, readable without the image
        plt.close(fig)
        paths.append(str(path))
    bars = {"answer_kind": exp.answer_kinds, **{k: v for k, v in exp.distributions.items()}}
    for name, counter in bars.items():
        if not counter:
            continue
        top = counter.most_common(20)
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.2))
        ax.barh([k or "(empty)" for k, _ in reversed(top)], [n for _, n in reversed(top)], color="#55a868")
        ax.set_xlabel("rows")
        ax.set_title(name)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(str(path))
    return paths


def explore(data: DataSection, prompt: PromptSection, out_dir: str | Path, tokenizer: Any = None,
            samples: int = 3, title: str | None = None, progress: bool = True) -> Exploration:
    """Explore `data` as a run would load it; writes report.md and PNG charts to `out_dir`."""
    start = time.perf_counter()
    out = Path(out_dir)
    loaded: LoadedData = load_adapted(data, progress)
    with progress_bars(progress and len(loaded.rows) >= LONG_PASS_ROWS):
        return _explore(loaded, data, prompt, out, tokenizer, samples, title, progress and len(loaded.rows) >= LONG_PASS_ROWS,
                        start)


def _explore(loaded: LoadedData, data: DataSection, prompt: PromptSection, out: Path, tokenizer: Any, samples: int,
             title: str | None, progress: bool, start: float) -> Exploration:
    rows = loaded.rows
    exp = Exploration(title or Path(data.dataset).name or data.dataset, source=loaded.source.describe(),
                      format=loaded.adapter.title, features=loaded.features, columns=loaded.raw_columns,
                      rows_loaded=len(rows))
    exp.split_sizes = split_sizes(loaded.source) or {loaded.source.split: len(rows)}
    exp.gold_from = dict(Counter(rows["gold_from"]))
    for column in ("problem_type", "question_type", "source"):
        if column in loaded.adapter.mapping:
            exp.distributions[column] = Counter(rows[column])
    golds = rows["answer"]
    exp.answer_kinds = Counter(answer_kind(g) for g in golds)
    verdicts = parseable_verdicts([g for g in golds if g], progress)
    exp.parse_rate = sum(verdicts.get(g, False) for g in golds) / max(len(golds), 1)
    exp.unparseable_examples = [g for g, ok in verdicts.items() if not ok][:10]

    ctx = make_filter_context(data, prompt, tokenizer, loaded.adapter, progress)
    kept, exp.sequential = apply_filters(rows, ctx)
    for name, _, _ in FILTERS:
        step = next(s for s in exp.sequential if s.name == name)
        if not step.skipped:
            _, (alone,) = apply_filters(rows, ctx, only=name)
            exp.alone[name] = alone.removed
    report = DataReport(rows_loaded=len(rows), rows_after_filters=len(kept), subset=data.subset, seed=data.seed)
    # A split that cannot be made (filters emptied the data, subset too large) still gets its report
    # written first: the filter table is what explains the error.
    error: UserError | None = no_rows_left(data.dataset, len(rows), exp.sequential) if not len(kept) else None
    if error is None:
        try:
            train, validation = split_rows(kept, loaded.validation_rows, ctx, data, report)
        except UserError as err:
            error = err
        else:
            report.train_rows, report.validation_rows = len(train), len(validation)
            exp.report = report
            shown = format_rows(train.select(range(min(samples, len(train)))), prompt) if samples else []
            exp.samples = [{"id": r["id"], "answer": r["answer"], "rendered": _render(r["prompt"], tokenizer)}
                           for r in shown]

    exp.length_unit, exp.lengths, raw_lengths = _lengths(rows, tokenizer, data.seed)
    out.mkdir(parents=True, exist_ok=True)
    exp.charts = _charts(out, exp, raw_lengths)
    exp.seconds = time.perf_counter() - start
    (out / "report.md").write_text(exp.markdown())
    (out / "summary.json").write_text(json.dumps({
        "source": exp.source, "format": exp.format, "columns": exp.columns, "columns_read": exp.features,
        "rows_loaded": exp.rows_loaded, "split_sizes": exp.split_sizes,
        "gold_from": exp.gold_from, "parse_rate": exp.parse_rate, "answer_kinds": dict(exp.answer_kinds),
        "distributions": {k: dict(v) for k, v in exp.distributions.items()},
        "filters": [{"name": s.name, "removed": s.removed, "remaining": s.remaining, "skipped": s.skipped,
                     "removed_alone": exp.alone.get(s.name)} for s in exp.sequential],
        "rows_after_filters": len(kept), "train_rows": report.train_rows, "validation_rows": report.validation_rows,
        "lengths": exp.lengths,
        "length_unit": exp.length_unit,
    }, indent=1))
    if error is not None:
        raise UserError(f"{error} (exploration report written to {out / 'report.md'})")
    return exp

