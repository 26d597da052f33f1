"""What a chain of stages kept and lost, from its evaluation folders (one per row: after stage 0..n).

- the accuracy matrix: pass@1 with its 95% Wilson interval, rows after stage 0..n, columns benchmarks;
- the change at each stage (row k against row k-1) and overall (row n against row 0), each with its 95%
  interval (paired where both rows answered the same problems once each) and the problems that flipped;
- forgetting per benchmark: the best earlier accuracy (rows 0..n-1) minus the final one, with the paired
  interval of that difference (a forgetting whose interval spans 0 may be noise);
- backward transfer (Lopez-Paz & Ranzato 2017, "GEM"): the mean, over the stages before the last that name
  a `task` benchmark (and the starting model's `start_task`), of final accuracy on that task minus the
  accuracy right after that stage learned it. Negative: later stages undid earlier learning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.evaluation import Evaluated, compare


def read_row(label: str, folder: Path) -> Evaluated:
    """An evaluation folder (evaluate.py's layout: summary.json, NAME/samples.jsonl) as one matrix row."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{folder}: no readable summary.json (the evaluation did not finish: rerun with --resume)") \
            from None
    return Evaluated(label, folder, dict(summary.get("benchmarks") or {}))


def _change(before: Evaluated, after: Evaluated, bench: str) -> dict[str, Any] | None:
    """after - before on one benchmark with its interval and flips (utils.evaluation.compare's row)."""
    if bench not in before.benchmarks or bench not in after.benchmarks:
        return None
    row = compare([before, after])["benchmarks"][bench][1]
    return {"delta": row["delta"], "ci95": row["delta_ci95"], "method": row["delta_method"],
            "forgotten": [f["id"] for f in row["forgotten"]], "learned": [f["id"] for f in row["learned"]],
            "examples": {kind: row[kind][:3] for kind in ("forgotten", "learned")}}


def _cell(row: Evaluated, bench: str) -> dict[str, Any] | None:
    s = row.benchmarks.get(bench)
    return None if s is None else {"pass@1": s["pass@1"], "ci95": s["ci95"], "problems": s["problems"]}


def _forgetting(rows: list[Evaluated], bench: str, acc: list[float | None]) -> dict[str, Any] | None:
    earlier = [(a, i) for i, a in enumerate(acc[:-1]) if a is not None]
    if not earlier or acc[-1] is None:
        return None
    best, at = max(earlier, key=lambda pair: (pair[0], -pair[1]))  # the first row that reached the best
    change = _change(rows[at], rows[-1], bench)
    low, high = change["ci95"] if change else (None, None)
    return {"value": best - acc[-1], "best_row": at, "best": best, "final": acc[-1],
            "ci95": [-high, -low] if change else None}


def backward_transfer(acc: dict[str, list[float | None]], tasks: dict[int, str]) -> dict[str, Any] | None:
    """Mean over rows i < n with a task benchmark T_i of acc[T_i][n] - acc[T_i][i]; None when no such row.
    `tasks`: row index -> benchmark (row 0: the starting model's earlier training, `start_task`)."""
    last = len(next(iter(acc.values()))) - 1 if acc else 0
    terms = []
    for i, bench in sorted(tasks.items()):
        if i >= last or acc[bench][i] is None or acc[bench][last] is None:
            continue
        terms.append({"row": i, "benchmark": bench, "after_learning": acc[bench][i], "final": acc[bench][last],
                      "difference": acc[bench][last] - acc[bench][i]})
    if not terms:
        return None
    return {"value": sum(t["difference"] for t in terms) / len(terms), "terms": terms}


def retention(rows: list[Evaluated], tasks: dict[int, str] | None = None,
              order: list[str] | None = None) -> dict[str, Any]:
    """Every retention number of one chain from its rows (row 0: the starting model; row k: after stage k);
    the columns in `order` (the study's), then any other benchmark the rows hold."""
    benches = list(dict.fromkeys([*(order or []), *(b for r in rows for b in r.benchmarks)]))
    matrix = {b: [_cell(r, b) for r in rows] for b in benches}
    acc = {b: [c["pass@1"] if c else None for c in cells] for b, cells in matrix.items()}
    return {
        "rows": [r.label for r in rows],
        "benchmarks": benches,
        "matrix": matrix,
        "changes": {b: [None, *(_change(rows[k - 1], rows[k], b) for k in range(1, len(rows)))] for b in benches},
        "total_change": {b: _change(rows[0], rows[-1], b) if len(rows) > 1 else None for b in benches},
        "forgetting": {b: _forgetting(rows, b, acc[b]) for b in benches},
        "backward_transfer": backward_transfer(acc, tasks or {}),
        "tasks": {str(k): v for k, v in sorted((tasks or {}).items())},
    }
