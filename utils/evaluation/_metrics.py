"""Benchmark metrics from per-sample records: pass@1, maj@k, unbiased pass@k, Wilson intervals, breakdowns.

A record is one completion of one problem: {id, sample, predicted, correct, tokens, truncated, ...}.
With k samples per problem, pass@1 is the mean correctness over all samples (an unbiased estimate of
the chance one sample is right), pass@k is the Codex estimator, and maj@k scores the most common answer.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion: sensible at 0%, 100% and small n (unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Exactly 0 / 1 at the edges (rounding leaves 1 - 1e-16, which would put p outside its own interval).
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    return lo, 1.0 if successes >= n else min(1.0, centre + half)


def difference_interval(p1: float, ci1: Sequence[float], p2: float, ci2: Sequence[float]) -> tuple[float, float]:
    """95% interval of p2 - p1 from each side's Wilson interval (Newcombe's hybrid score method)."""
    d = p2 - p1
    lower = d - math.sqrt((p2 - ci2[0]) ** 2 + (ci1[1] - p1) ** 2)
    upper = d + math.sqrt((ci2[1] - p2) ** 2 + (p1 - ci1[0]) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def paired_difference_interval(both: int, forgotten: int, learned: int, neither: int,
                               z: float = Z_95) -> tuple[float, float]:
    """95% interval of after - before when both models answered the same problems once each (Newcombe 1998,
    method 10: the two Wilson intervals joined through the correlation of the paired answers).

    The same problems scored twice are correlated: most keep their verdict. Treating the two accuracies as
    independent samples (difference_interval) then overstates the noise; this interval uses the flips."""
    n = both + forgotten + learned + neither
    if n == 0:
        return -1.0, 1.0
    before, after = (both + forgotten) / n, (both + learned) / n
    l1, u1 = wilson_interval(both + forgotten, n, z)
    l2, u2 = wilson_interval(both + learned, n, z)
    margins = (both + forgotten) * (learned + neither) * (both + learned) * (forgotten + neither)
    phi = (both * neither - forgotten * learned) / math.sqrt(margins) if margins else 0.0
    d = after - before
    lower = d - math.sqrt(max(0.0, (after - l2) ** 2 - 2 * phi * (after - l2) * (u1 - before) + (u1 - before) ** 2))
    upper = d + math.sqrt(max(0.0, (u2 - after) ** 2 - 2 * phi * (u2 - after) * (before - l1) + (before - l1) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_correct(samples: Sequence[dict]) -> bool:
    """Whether the most common extracted answer is right (ties: the one seen first; no answer never wins)."""
    answers = [s["predicted"] for s in samples if s.get("predicted") is not None]
    if not answers:
        return False
    counts = Counter(answers)
    top = max(counts.values())
    winner = next(a for a in answers if counts[a] == top)
    return bool(next(s["correct"] for s in samples if s.get("predicted") == winner))


def k_values(k: int) -> list[int]:
    """The pass@k values reported for k samples: powers of two up to k, and k itself."""
    values = [1]
    while values[-1] * 2 <= k:
        values.append(values[-1] * 2)
    return values if values[-1] == k else [*values, k]


def by_problem(records: Iterable[dict]) -> dict[str, list[dict]]:
    """Records grouped by problem id, each group ordered by sample index."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[str(record["id"])].append(record)
    return {pid: sorted(group, key=lambda r: r.get("sample", 0)) for pid, group in groups.items()}


def problem_correct(samples: Sequence[dict]) -> bool:
    """One verdict per problem (for flips): the greedy sample, or the majority answer with k samples."""
    return bool(samples[0]["correct"]) if len(samples) == 1 else majority_correct(samples)


def accuracy_block(groups: Sequence[Sequence[dict]]) -> dict[str, Any]:
    """pass@1 with its Wilson interval over problems (mean correctness of each problem's samples)."""
    n = len(groups)
    score = sum(sum(bool(s["correct"]) for s in g) / len(g) for g in groups)
    lo, hi = wilson_interval(score, n)
    return {"problems": n, "pass@1": score / n if n else 0.0, "ci95": [lo, hi]}


def summarize(records: Iterable[dict], k: int, breakdown: Sequence[str] = ()) -> dict[str, Any]:
    """Every metric of one benchmark from its records; `breakdown` names record fields to split by."""
    records = list(records)
    groups = list(by_problem(records).values())
    summary = accuracy_block(groups)
    summary["samples_per_problem"] = k
    complete = [g for g in groups if len(g) >= k]
    if k > 1:
        summary[f"maj@{k}"] = sum(majority_correct(g) for g in complete) / len(complete) if complete else 0.0
        for kk in k_values(k)[1:]:
            summary[f"pass@{kk}"] = (sum(pass_at_k(len(g), sum(bool(s["correct"]) for s in g), kk) for g in complete)
                                     / len(complete)) if complete else 0.0
    n = len(records)
    summary["extraction_rate"] = sum(r.get("predicted") is not None for r in records) / n if n else 0.0
    summary["truncation_rate"] = sum(bool(r.get("truncated")) for r in records) / n if n else 0.0
    summary["mean_tokens"] = sum(r.get("tokens", 0) for r in records) / n if n else 0.0
    for field in breakdown:
        parts: dict[str, list] = defaultdict(list)
        for g in groups:
            parts[str(g[0].get(field) or "?")].append(g)
        summary[f"by_{field}"] = {key: accuracy_block(parts[key]) for key in sorted(parts, key=_natural)}
    return summary


def _natural(text: str) -> tuple:
    """Sort key that puts 'Level 2' before 'Level 10' and '2' before '10'."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))
