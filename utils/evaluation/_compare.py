"""The retention report: several evaluated models side by side, deltas against the first with their
intervals, a grouped bar chart, and per benchmark the problems each model forgot or learned.

Inputs are evaluation folders (summary.json from evaluate.py), or runs, checkpoints and models, whose
default evaluation folder is used. Flips compare problem by problem on the problems both evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.evaluation._metrics import by_problem, difference_interval, paired_difference_interval, problem_correct
from utils.evaluation._models import resolve_model
from utils.evaluation._report import interval, pct
from utils.evaluation._runner import SAMPLES, SUMMARY, read_samples, write_json
from utils.files import staged

EXAMPLES = 3  # flipped problems shown per direction in the markdown
CHART = "retention.png"


@dataclass
class Evaluated:
    label: str
    folder: Path
    benchmarks: dict[str, dict]  # name -> summary

    def verdicts(self, bench: str) -> dict[str, tuple[bool, dict]]:
        """Problem id -> (correct, first sample) from the benchmark's samples file."""
        groups = by_problem(read_samples(self.folder / bench / SAMPLES))
        return {pid: (problem_correct(g), g[0]) for pid, g in groups.items()}


def _read_summary(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "benchmarks" in data else None


def find_evaluation(target: str) -> Evaluated:
    """An evaluation folder, or the default one of a run, checkpoint or model; UserError when none exists."""
    folder = Path(target).expanduser()
    summary = _read_summary(folder)
    if summary is None:
        spec = resolve_model(target)
        folder = spec.default_out
        summary = _read_summary(folder)
        if summary is None:
            raise UserError(f"{target}: no evaluation found ({folder / SUMMARY} is missing): run "
                            f"`python scripts/evaluate.py {target} --bench NAMES` first, or give its --out folder")
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


def compare(models: list[Evaluated]) -> dict[str, Any]:
    """Per benchmark: each model's pass@1 and interval, its delta against the first, and the flips."""
    first = models[0]
    result: dict[str, Any] = {"models": [m.label for m in models], "benchmarks": {}}
    names = list(dict.fromkeys(n for m in models for n in m.benchmarks))
    for name in names:
        base = first.benchmarks.get(name)
        rows = []
        for m in models:
            s = m.benchmarks.get(name)
            if s is None:
                rows.append(None)
                continue
            row = {"model": m.label, "problems": s["problems"], "pass@1": s["pass@1"], "ci95": s["ci95"]}
            if base is not None and m is not first:
                a, b = first.verdicts(name), m.verdicts(name)
                changed = _flips(a, b)
                row["delta"] = s["pass@1"] - base["pass@1"]
                row["delta_ci95"], row["delta_method"] = delta_interval(base, s, a, b, changed)
                row.update(changed)
            rows.append(row)
        result["benchmarks"][name] = rows
    return result


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
             "be noise.", "",
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


def write_comparison(targets: list[str], out_dir: Path) -> dict[str, Any]:
    """comparison.json, report.md and retention.png in `out_dir` for the evaluated `targets`."""
    if len(targets) < 2:
        raise UserError("compare: give at least two runs, checkpoints or evaluation folders")
    models = [find_evaluation(t) for t in targets]
    _unique_labels(models)
    result = compare(models)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "comparison.json", result)
    (out_dir / "report.md").write_text(markdown(result) + f"\n![retention]({CHART})\n", encoding="utf-8")
    bar_chart(result, out_dir / CHART)
    return result
