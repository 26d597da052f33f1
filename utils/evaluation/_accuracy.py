"""Accuracy of a model on problems with gold answers: greedy generation, answer extraction, verification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.answers import extract_answer, verify_batch
from utils.evaluation._generation import generate


@dataclass
class EvalResult:
    accuracy: float
    correct: int
    total: int
    records: list[dict] = field(default_factory=list)  # per problem: problem, gold, completion, predicted, correct


def evaluate_accuracy(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict],
    max_new_tokens: int,
    batch_size: int = 16,
    progress: Any = None,
) -> EvalResult:
    """Greedy pass@1 on `rows` (each with `prompt` chat messages and a gold `answer`)."""
    rows = list(rows)
    if not rows:
        return EvalResult(accuracy=0.0, correct=0, total=0)
    completions = generate(
        model, tokenizer, [r["prompt"] for r in rows], max_new_tokens, batch_size=batch_size, progress=progress
    )
    predicted = [extract_answer(c) for c in completions]
    verdicts = verify_batch([r["answer"] for r in rows], predicted)
    records = [
        {"problem": r.get("problem", ""), "gold": r["answer"], "completion": c, "predicted": p, "correct": v}
        for r, c, p, v in zip(rows, completions, predicted, verdicts, strict=True)
    ]
    correct = sum(verdicts)
    return EvalResult(accuracy=correct / len(rows), correct=correct, total=len(rows), records=records)
