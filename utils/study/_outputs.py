"""A study's outputs in its folder: matrix.csv, summary.json, report.md and plots/ (heatmap, per-benchmark lines),
each written whole or not at all (utils.files)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from utils.files import staged, write_atomic

MATRIX, SUMMARY, REPORT, PLOTS = "matrix.csv", "summary.json", "report.md", "plots"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _interval(ci: list[float] | None, signed: bool = False) -> str:
    if not ci:
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"[{fmt.format(100 * ci[0])}, {fmt.format(100 * ci[1])}]"


def matrix_csv(chains: list[dict[str, Any]]) -> str:
    """One line per chain and row (after stage 0..n); per benchmark its pass@1 and 95% Wilson interval."""
    benches = list(dict.fromkeys(b for c in chains for b in c["retention"]["benchmarks"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["chain", "model", "seed", "after_stage", "stage",
                     *[f"{b}{suffix}" for b in benches for suffix in ("", "_ci_low", "_ci_high", "_problems")]])
    for chain in chains:
        result = chain["retention"]
        for k, label in enumerate(result["rows"]):
            cells = []
            for b in benches:
                cell = result["matrix"].get(b, [None] * len(result["rows"]))[k]
                cells += ["", "", "", ""] if cell is None else [
                    f"{cell['pass@1']:.6f}", f"{cell['ci95'][0]:.6f}", f"{cell['ci95'][1]:.6f}", cell["problems"]]
            writer.writerow([chain["label"], chain["model"], "" if chain["seed"] is None else chain["seed"], k, label,
                             *cells])
    return out.getvalue()


def _verdict(ci: list[float] | None) -> str:
    if not ci:
        return ""
    return " (within noise)" if ci[0] <= 0 <= ci[1] else ""


def chain_markdown(chain: dict[str, Any]) -> list[str]:
    result = chain["retention"]
    benches, rows = result["benchmarks"], result["rows"]
    title = chain["label"] or "Results"
    lines = [f"## {title}", "", f"Starting model: `{chain['model']}`"
             + (f", training seed {chain['seed']}" if chain["seed"] is not None else "") + ".", "",
             "### Accuracy (pass@1 %, 95% Wilson interval)", "",
             "| after stage | " + " | ".join(benches) + " |", "|---|" + "---|" * len(benches)]
    for k, label in enumerate(rows):
        cells = [c for c in (result["matrix"][b][k] for b in benches)]
        lines.append(f"| {k}: {label} | " + " | ".join(
            "-" if c is None else f"{_pct(c['pass@1'])} {_interval(c['ci95'])}" for c in cells) + " |")
    lines += ["", "### Change at each stage (points, 95% interval; flips: right -> wrong / wrong -> right)", "",
              "| stage | " + " | ".join(benches) + " |", "|---|" + "---|" * len(benches)]
    for k in range(1, len(rows)):
        cells = [result["changes"][b][k] for b in benches]
        lines.append(f"| {k}: {rows[k]} | " + " | ".join(
            "-" if c is None else f"{100 * c['delta']:+.1f} {_interval(c['ci95'], True)}{_verdict(c['ci95'])}; "
            f"-{len(c['forgotten'])} / +{len(c['learned'])}" for c in cells) + " |")
    lines += ["", "### Forgetting and transfer", "",
              "| benchmark | start -> final | forgetting (best earlier - final) |", "|---|---|---|"]
    for b in benches:
        total, forget = result["total_change"][b], result["forgetting"][b]
        change = "-" if total is None else f"{100 * total['delta']:+.1f} {_interval(total['ci95'], True)}"
        forgot = "-" if forget is None else (f"{100 * forget['value']:+.1f} {_interval(forget['ci95'], True)} "
                                             f"(best after stage {forget['best_row']}){_verdict(forget['ci95'])}")
        lines.append(f"| {b} | {change} | {forgot} |")
    bwt = result["backward_transfer"]
    lines.append("")
    if bwt is None:
        lines.append("Backward transfer: not defined here (it needs a stage before the last with a `task`, or "
                     "`start_task`).")
    else:
        terms = "; ".join(f"{t['benchmark']} after stage {t['row']}: {_pct(t['after_learning'])} -> "
                          f"{_pct(t['final'])}" for t in bwt["terms"])
        lines.append(f"Backward transfer: {100 * bwt['value']:+.1f} points ({terms}).")
    lines += _flip_examples(result)
    return lines


def _flip_examples(result: dict[str, Any]) -> list[str]:
    lines = ["", "### Problems that flipped", ""]
    for b in result["benchmarks"]:
        for k, change in enumerate(result["changes"][b]):
            if not change or not (change["forgotten"] or change["learned"]):
                continue
            lines.append(f"- {b}, stage {k} ({result['rows'][k]}): {len(change['forgotten'])} forgotten, "
                         f"{len(change['learned'])} learned")
            for kind in ("forgotten", "learned"):
                for f in change["examples"][kind]:
                    problem = " ".join(str(f["problem"]).split())
                    problem = problem if len(problem) <= 120 else problem[:117] + "..."
                    lines.append(f"  - {kind} `{f['id']}`: {problem} (gold `{f['gold']}`; before `{f['before']}`, "
                                 f"after `{f['after']}`)")
    return lines if len(lines) > 3 else lines + ["None."]


def report_markdown(study: dict[str, Any], chains: list[dict[str, Any]], plots: list[str]) -> str:
    lines = [f"# Retention study: {study['name']}", "",
             f"Stages, in order: {', '.join(s['name'] for s in study['stages'])}. Each row is an evaluation of the "
             "model after that stage (0: the starting model) on the same problems. A change or a forgetting whose "
             "95% interval spans 0 may be noise (intervals: Newcombe, paired where both rows answered the same "
             "problems once each).", ""]
    for chain in chains:
        lines += chain_markdown(chain) + [""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _figure_to(path: Path, fig: Any) -> None:
    import matplotlib.pyplot as plt

    with staged(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_chain(chain: dict[str, Any], folder: Path) -> list[Path]:
    """A heatmap of the matrix and one line per benchmark across the rows (Wilson intervals as bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, suffix = chain["retention"], f"-{chain['label']}" if chain["label"] else ""
    benches, rows = result["benchmarks"], result["rows"]
    values = [[(c["pass@1"] * 100 if (c := result["matrix"][b][k]) else float("nan")) for b in benches]
              for k in range(len(rows))]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(benches) + 2), max(2.5, 0.6 * len(rows) + 1.5)))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for k in range(len(rows)):
        for j in range(len(benches)):
            ax.text(j, k, _pct(values[k][j] / 100), ha="center", va="center", color="white", fontsize=9)
    ax.set_xticks(range(len(benches)), benches)
    ax.set_yticks(range(len(rows)), [f"{k}: {r}" for k, r in enumerate(rows)])
    ax.set_title("pass@1 (%) after each stage")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    heatmap = folder / PLOTS / f"heatmap{suffix}.png"
    _figure_to(heatmap, fig)

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 3), 4))
    for b in benches:
        cells = result["matrix"][b]
        xs = [k for k, c in enumerate(cells) if c]
        ax.plot(xs, [100 * cells[k]["pass@1"] for k in xs], marker="o", label=b)
        ax.fill_between(xs, [100 * cells[k]["ci95"][0] for k in xs], [100 * cells[k]["ci95"][1] for k in xs],
                        alpha=0.15)
    ax.set_xticks(range(len(rows)), [f"{k}: {r}" for k, r in enumerate(rows)])
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("Accuracy across stages (95% Wilson bands)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    lines = folder / PLOTS / f"lines{suffix}.png"
    _figure_to(lines, fig)
    return [heatmap, lines]


def write_outputs(folder: Path, study: dict[str, Any], chains: list[dict[str, Any]]) -> dict[str, Any]:
    """matrix.csv, summary.json, report.md and the plots; returns the summary."""
    plots = [p for chain in chains for p in plot_chain(chain, folder)]
    summary = {"study": study["name"], "study_file": study["path"], "chains": chains}
    write_atomic(folder / MATRIX, matrix_csv(chains))
    write_atomic(folder / SUMMARY, json.dumps(summary, indent=1, ensure_ascii=False, default=str) + "\n")
    write_atomic(folder / REPORT, report_markdown(study, chains, [str(p.relative_to(folder)) for p in plots]))
    return summary
