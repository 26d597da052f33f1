"""An evaluation folder's summary.json (every benchmark evaluated there) and its markdown report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from utils.evaluation._runner import SUMMARY, write_json

REPORT = "report.md"


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def interval(ci: list[float]) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]"


def collect(out_dir: Path) -> dict[str, dict]:
    """Benchmark name -> its summary, for every OUT/NAME/summary.json (earlier runs into the same folder too)."""
    found = {}
    for path in sorted(Path(out_dir).glob(f"*/{SUMMARY}")):
        try:
            found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def _extra_metrics(s: dict) -> str:
    names = [k for k in s if k.startswith(("maj@", "pass@")) and k != "pass@1"]
    return ", ".join(f"{k} {pct(s[k])}" for k in names) or "-"


def benchmark_table(summaries: dict[str, dict]) -> list[str]:
    lines = [
        "| benchmark | problems | pass@1 % | 95% CI | maj@k / pass@k % | answer found % | truncated % | mean tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s['problems']} | {pct(s['pass@1'])} | {interval(s['ci95'])} | {_extra_metrics(s)} "
                     f"| {pct(s['extraction_rate'])} | {pct(s['truncation_rate'])} | {s['mean_tokens']:.0f} |")
    return lines


def breakdown_tables(name: str, s: dict) -> list[str]:
    lines: list[str] = []
    for key in (k for k in s if k.startswith("by_")):
        lines += ["", f"### {name} by {key[3:]}", "", f"| {key[3:]} | problems | pass@1 % | 95% CI |", "|---|---|---|---|"]
        lines += [f"| {part} | {b['problems']} | {pct(b['pass@1'])} | {interval(b['ci95'])} |"
                  for part, b in s[key].items()]
    return lines


def write_report(out_dir: Path, model: str) -> dict[str, Any]:
    """Rewrite OUT/summary.json and OUT/report.md from every benchmark evaluated in OUT; returns the summary."""
    summaries = collect(out_dir)
    summary = {"model": model, "benchmarks": summaries}
    write_json(Path(out_dir) / SUMMARY, summary)
    first = next(iter(summaries.values()), {})
    lines = [f"# Evaluation of {model}", "",
             f"Backend {first.get('backend', '?')}; pass@1 is greedy accuracy with one sample per problem, else the "
             "mean over samples. 95% CI: Wilson score interval over problems.", "", *benchmark_table(summaries)]
    for name, s in summaries.items():
        lines += breakdown_tables(name, s)
    (Path(out_dir) / REPORT).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary
