"""The retention report: several evaluated models side by side, deltas against the first with their
intervals, a grouped bar chart, and per benchmark the problems each model forgot or learned.

Inputs are evaluation folders (summary.json from evaluate.py), or runs, checkpoints and models, whose
default evaluation folder is used. An unfinished evaluation is refused as such. Evaluations of one benchmark
must cover the same problems (else a difference in accuracy may be a difference in problems), unless the
comparison is asked for on the problems they share (`intersection`), which the report then says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.evaluation._metrics import (
    by_problem,
    difference_interval,
    paired_difference_interval,
    problem_correct,
    summarize,
)
from utils.evaluation._models import resolve_model
from utils.evaluation._report import interval, pct
from utils.evaluation._runner import SAMPLES, SETTINGS, SUMMARY, read_samples, write_json
from utils.files import staged

EXAMPLES = 3  # flipped problems shown per direction in the markdown
CHART = "retention.png"


RERUN = "rerun the evaluate.py command that wrote it (same --out) to finish it"


@dataclass
class Evaluated:
    label: str
    folder: Path
    benchmarks: dict[str, dict]  # name -> summary
    _samples: dict[str, dict[str, list[dict]]] = field(default_factory=dict, repr=False)

    def samples(self, bench: str) -> dict[str, list[dict]]:
        """Problem id -> its sample records, read once."""
        if bench not in self._samples:
            self._samples[bench] = by_problem(read_samples(self.folder / bench / SAMPLES))
        return self._samples[bench]

    def problem_ids(self, bench: str) -> set[str]:
        """The problems the summary covers (its list; older summaries: every problem in the samples file)."""
        listed = self.benchmarks[bench].get("problem_ids")
        return set(listed) if listed else set(self.samples(bench))

    def verdicts(self, bench: str, only: set[str] | None = None) -> dict[str, tuple[bool, dict]]:
        """Problem id -> (correct, first sample) for the problems the summary covers (or `only` these)."""
        keep = self.problem_ids(bench) if only is None else only
        return {pid: (problem_correct(g), g[0]) for pid, g in self.samples(bench).items() if pid in keep}

    def summary_of(self, bench: str, only: set[str] | None) -> dict:
        """The benchmark's summary, or one recomputed from the samples of `only` these problems."""
        summary = self.benchmarks[bench]
        if only is None:
            return summary
        records = [r for pid, g in self.samples(bench).items() if pid in only for r in g]
        return summarize(records, summary.get("samples_per_problem", 1))


def _read_summary(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "benchmarks" in data else None


def _started(folder: Path) -> list[Path]:
    """The benchmark folders evaluate.py began in `folder` (settings or samples written)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / SETTINGS).is_file() or (p / SAMPLES).is_file())


def _unfinished(folder: Path, summary: dict | None) -> list[str]:
    """What is left to do in an evaluation folder: benchmarks sampled but not summarised, or summarised over
    problems whose samples are not all on file."""
    missing = []
    for bench in _started(folder):
        summarised = (summary or {}).get("benchmarks", {}).get(bench.name)
        if summarised is None or not (bench / SUMMARY).is_file():
            missing.append(f"{bench.name}: {len(by_problem(read_samples(bench / SAMPLES)))} problems sampled, "
                           "not summarised")
            continue
        k, wanted = summarised.get("samples_per_problem", 1), summarised["problems"]
        done = Evaluated("", folder, {bench.name: summarised})
        complete = [pid for pid, g in done.samples(bench.name).items()
                    if len(g) >= k and pid in done.problem_ids(bench.name)]
        if len(complete) < wanted:
            missing.append(f"{bench.name}: {len(complete)} of {wanted} problems have their samples")
    return missing


def _refuse_unfinished(folder: Path, summary: dict | None) -> None:
    missing = _unfinished(folder, summary)
    if missing:
        raise UserError(f"{folder}: unfinished evaluation ({'; '.join(missing)}): {RERUN}")


def find_evaluation(target: str) -> Evaluated:
    """An evaluation folder, or the default one of a run, checkpoint or model; UserError when none exists or it
    is unfinished."""
    folder = Path(target).expanduser()
    summary = _read_summary(folder)
    if summary is None and _started(folder):
        _refuse_unfinished(folder, None)
    if summary is None:
        spec = resolve_model(target)
        folder = spec.default_out
        summary = _read_summary(folder)
        if summary is None:
            _refuse_unfinished(folder, None)
            raise UserError(f"{target}: no evaluation found ({folder / SUMMARY} is missing): run "
                            f"`python scripts/evaluate.py {target} --bench NAMES` first, or give its --out folder")
    _refuse_unfinished(folder, summary)
    if not summary["benchmarks"]:
        raise UserError(f"{folder / SUMMARY}: no benchmark results in it")
    return Evaluated(str(summary.get("model") or folder.name), folder, summary["benchmarks"])


def _unique_labels(models: list[Evaluated]) -> None:
    seen: dict[str, int] = {}
    for m in models:
        seen[m.label] = seen.get(m.label, 0) + 1
        if seen[m.label] > 1:
            m.label = f"{m.label} ({seen[m.label]})"


def flips(first: Evaluated, other: Evaluated, bench: str) -> dict[str, list[dict]]:
    """Problems right in `first` and wrong in `other` (forgotten), and the reverse (learned)."""
    return _flips(first.verdicts(bench), other.verdicts(bench))


def _flips(a: dict[str, tuple[bool, dict]], b: dict[str, tuple[bool, dict]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"forgotten": [], "learned": []}
    for pid in sorted(a.keys() & b.keys()):
        (right_a, sample_a), (right_b, sample_b) = a[pid], b[pid]
        if right_a != right_b:
            out["forgotten" if right_a else "learned"].append({
                "id": pid, "problem": sample_a.get("problem", ""), "gold": sample_a.get("gold"),
                "before": sample_a.get("predicted"), "after": sample_b.get("predicted")})
    return out


def delta_interval(base: dict, s: dict, a: dict[str, tuple[bool, dict]], b: dict[str, tuple[bool, dict]],
                   changed: dict[str, list[dict]]) -> tuple[list[float], str]:
    """The 95% interval of the change and its method: paired (the same problems, one answer each: most keep
    their verdict, which the independent interval ignores) or independent (different problems, or k samples)."""
    if a.keys() == b.keys() and base.get("samples_per_problem", 1) == 1 and s.get("samples_per_problem", 1) == 1:
        forgotten, learned = len(changed["forgotten"]), len(changed["learned"])
        both = sum(right and b[pid][0] for pid, (right, _) in a.items())
        neither = len(a) - both - forgotten - learned
        return list(paired_difference_interval(both, forgotten, learned, neither)), "paired"
    return list(difference_interval(base["pass@1"], base["ci95"], s["pass@1"], s["ci95"])), "independent"


def shared_problems(models: list[Evaluated], intersection: bool) -> dict[str, set[str]]:
    """Benchmark -> the problems every evaluation of it shares, for each benchmark whose evaluations cover
    different problems; refused (one line naming the counts) unless `intersection`."""
    shared, differing = {}, []
    for name in dict.fromkeys(n for m in models for n in m.benchmarks):
        sets = {m.label: m.problem_ids(name) for m in models if name in m.benchmarks}
        common = set.intersection(*sets.values())
        if all(ids == common for ids in sets.values()):
            continue
        counts = ", ".join(f"{label}: {len(ids)}" for label, ids in sets.items())
        differing.append(f"{name} ({counts}; {len(common)} shared)")
        if intersection and not common:
            raise UserError(f"{name}: no problem is in every evaluation ({counts}): nothing to compare")
        shared[name] = common
    if differing and not intersection:
        raise UserError(f"the evaluations cover different problems: {'; '.join(differing)}: pass --intersection to "
                        "compare only the problems they share, or evaluate each on the same problems (same --limit)")
    return shared


def compare(models: list[Evaluated], intersection: bool = False) -> dict[str, Any]:
    """Per benchmark: each model's pass@1 and interval, its delta against the first, and the flips. Evaluations of
    different problems are refused, or with `intersection` compared on the problems they share (result's
    "intersection": benchmark -> {shared, evaluated: label -> problems})."""
    first = models[0]
    shared = shared_problems(models, intersection)
    result: dict[str, Any] = {"models": [m.label for m in models], "benchmarks": {}, "intersection": {
        name: {"shared": len(ids), "evaluated": {m.label: len(m.problem_ids(name)) for m in models
                                                 if name in m.benchmarks}} for name, ids in shared.items()}}
    result["precision"] = {m.label: precision_of(m) for m in models}
    for name in dict.fromkeys(n for m in models for n in m.benchmarks):
        only = shared.get(name)
        base = first.summary_of(name, only) if name in first.benchmarks else None
        rows = []
        for m in models:
            if name not in m.benchmarks:
                rows.append(None)
                continue
            s = m.summary_of(name, only)
            row = {"model": m.label, "problems": s["problems"], "pass@1": s["pass@1"], "ci95": s["ci95"]}
            if base is not None and m is not first:
                a, b = first.verdicts(name, only), m.verdicts(name, only)
                changed = _flips(a, b)
                row["delta"] = s["pass@1"] - base["pass@1"]
                row["delta_ci95"], row["delta_method"] = delta_interval(base, s, a, b, changed)
                row.update(changed)
            rows.append(row)
        result["benchmarks"][name] = rows
    return result


PLAIN_DTYPES = {"float32", "bfloat16", "float16"}  # unquantized weights: a difference there is precision alone


def precision_of(model: Evaluated) -> str | None:
    """The weights an evaluation generated with, in words: its quantization (`4-bit NF4`), else its dtype;
    several when its benchmarks differ; None where its summaries record neither (older evaluations)."""
    found = [s.get("quantization") or s.get("dtype") for s in model.benchmarks.values()]
    return " / ".join(dict.fromkeys(str(p) for p in found if p)) or None


def precision_notes(result: dict[str, Any]) -> list[str]:
    """One line when the evaluations compared ran in different precisions: the deltas then mix training with
    quantization (a 16-bit "before" against a 4-bit + LoRA "after" counts quantization loss as forgetting)."""
    recorded = result.get("precision", {})
    kinds = list(dict.fromkeys(p for p in recorded.values() if p))
    if len(kinds) < 2:
        return []
    cause = "precision" if set(kinds) <= PLAIN_DTYPES else "quantization"
    return [f"evaluations differ in precision: {' vs '.join(kinds)}: part of the change may be {cause}, not training"]


def intersection_notes(result: dict[str, Any]) -> list[str]:
    """One line per benchmark compared on the problems its evaluations share."""
    lines = []
    for name, info in result.get("intersection", {}).items():
        counts = ", ".join(f"{label} {'evaluated ' if i == 0 else ''}{n}"
                           for i, (label, n) in enumerate(info["evaluated"].items()))
        lines.append(f"{name}: compared on the {info['shared']} problems every evaluation shares ({counts})")
    return lines


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    text = f"{pct(row['pass@1'])} {interval(row['ci95'])}"
    if "delta" in row:
        text += f"; Δ {100 * row['delta']:+.1f} {interval(row['delta_ci95'])}"
    return text


def _examples(row: dict, kind: str) -> list[str]:
    lines = []
    for f in row[kind][:EXAMPLES]:
        problem = " ".join(f["problem"].split())
        problem = problem if len(problem) <= 160 else problem[:157] + "..."
        lines.append(f"  - `{f['id']}`: {problem} (gold `{f['gold']}`; before `{f['before']}`, after `{f['after']}`)")
    return lines


def markdown(result: dict[str, Any]) -> str:
    models = result["models"]
    lines = ["# Retention report", "", f"Models, first is the reference: {', '.join(models)}.", "",
             "pass@1 % with its 95% Wilson interval; Δ: points against the first model, with a 95% interval "
             "(Newcombe: paired where both models answered the same problems once each, from the two Wilson "
             "intervals and the flips; else from the two Wilson intervals alone). A Δ whose interval spans 0 may "
             "be noise.", "", *(f"{note}." for note in intersection_notes(result) + precision_notes(result)),
             *([""] if result.get("intersection") or precision_notes(result) else []),
             "| benchmark | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for name, rows in result["benchmarks"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(r) for r in rows) + " |")
    for name, rows in result["benchmarks"].items():
        changed = [r for r in rows if r is not None and "forgotten" in r]
        if not changed:
            continue
        lines += ["", f"## {name}: flips against {models[0]}", ""]
        for r in changed:
            lines.append(f"- {r['model']}: {len(r['forgotten'])} forgotten (right -> wrong), "
                         f"{len(r['learned'])} learned (wrong -> right)")
            for kind in ("forgotten", "learned"):
                if r[kind]:
                    lines += [f"  {kind}:", *_examples(r, kind)]
    return "\n".join(lines) + "\n"


def bar_chart(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars: one group per benchmark, one bar per model, Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, models = list(result["benchmarks"]), result["models"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) * max(1, len(models) / 2)), 4))
    for i, model in enumerate(models):
        rows = [result["benchmarks"][n][i] for n in names]
        values = [100 * r["pass@1"] if r else 0 for r in rows]
        errors = [[max(0.0, 100 * (r["pass@1"] - r["ci95"][0])) if r else 0 for r in rows],
                  [max(0.0, 100 * (r["ci95"][1] - r["pass@1"])) if r else 0 for r in rows]]
        ax.bar([x + (i - (len(models) - 1) / 2) * width for x in range(len(names))], values, width,
               yerr=errors, capsize=3, label=model)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("Accuracy by benchmark (95% Wilson intervals)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with staged(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def write_comparison(targets: list[str], out_dir: Path, intersection: bool = False) -> dict[str, Any]:
    """comparison.json, report.md and retention.png in `out_dir` for the evaluated `targets` (`intersection`:
    evaluations of different problems compared on the problems they share, else refused)."""
    if len(targets) < 2:
        raise UserError("compare: give at least two runs, checkpoints or evaluation folders")
    models = [find_evaluation(t) for t in targets]
    _unique_labels(models)
    result = compare(models, intersection)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "comparison.json", result)
    (out_dir / "report.md").write_text(markdown(result) + f"\n![retention]({CHART})\n", encoding="utf-8")
    bar_chart(result, out_dir / CHART)
    return result
