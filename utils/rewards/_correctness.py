"""Correctness rewards: accuracy, and length scaled by correctness."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from utils.answers import extract_answer, is_parseable, verify_all
from utils.rewards._common import _golds, _texts


def correctness(completions: Sequence[Any], golds: Sequence[Any]) -> list[bool | None]:
    """Per completion: whether its final answer equals the gold.

    None where the gold is unreadable, or where the check was undecided (it overran its deadline:
    a verdict must not depend on machine load); TRL skips None samples, and utils.answers.stats()
    counts the undecided ones as "timeouts".
    """
    texts = _texts(completions)
    readable = {}
    for gold in golds:
        key = gold if isinstance(gold, str) else repr(gold)
        if key not in readable:
            readable[key] = is_parseable(gold if isinstance(gold, str) else str(gold))
    keys = [g if isinstance(g, str) else repr(g) for g in golds]
    idx = [i for i, k in enumerate(keys) if readable[k]]
    verdicts = verify_all(
        [golds[i] if isinstance(golds[i], str) else str(golds[i]) for i in idx],
        [extract_answer(texts[i]) for i in idx],
    )
    out: list[bool | None] = [None] * len(texts)
    for i, verdict in zip(idx, verdicts, strict=True):
        out[i] = verdict
    return out


def accuracy(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the completion's final answer equals the gold `answer`, 0.0 otherwise; None (skipped) for
    an unreadable gold or an undecided check."""
    verdicts = correctness(completions, _golds(kwargs, len(completions), "accuracy"))
    return [None if v is None else float(v) for v in verdicts]


def length(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    max_len: int = 1024,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    **kwargs: Any,
) -> list[float | None]:
    """Cosine length scaling by correctness (Yeo et al. 2025, "Demystifying Long Chain-of-Thought").

    A right answer earns max_value_correct at length 0, falling along a half cosine to
    min_value_correct at max_len tokens; a wrong one earns min_value_wrong at length 0 rising to
    max_value_wrong at max_len (thinking longer is less bad when wrong). Lengths are token counts
    from completion_ids where TRL passes them, else whitespace words.
    """
    texts = _texts(completions)
    verdicts = correctness(completions, _golds(kwargs, len(completions), "length"))
    ids = kwargs.get("completion_ids")
    lengths = [len(x) for x in ids] if ids is not None else [len(t.split()) for t in texts]
    out: list[float | None] = []
    for verdict, n in zip(verdicts, lengths, strict=True):
        if verdict is None:
            out.append(None)
            continue
        progress = min(1.0, n / max(1, max_len))
        cosine = math.cos(progress * math.pi)
        # correct: start (L=0) at max_value_correct; wrong: start at min_value_wrong
        start, end = (max_value_correct, min_value_correct) if verdict else (min_value_wrong, max_value_wrong)
        out.append(end + 0.5 * (start - end) * (1.0 + cosine))
    return out
