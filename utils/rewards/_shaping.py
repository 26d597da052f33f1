"""Shaping rewards: overlong punishment, repetition penalty, explicit reasoning steps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from utils.rewards._common import _texts, _token_lengths


def overlong(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    max_completion_length: int = 1024,
    buffer: int | None = None,
    penalty: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """DAPO soft overlong punishment (Yu et al. 2025) from completion token counts.

    0 up to max_completion_length - buffer tokens, then linear down to -penalty at
    max_completion_length (a truncated completion), -penalty beyond. buffer defaults to a fifth of
    the maximum (DAPO: 4096 of 20480).
    """
    texts = _texts(completions)
    lengths = _token_lengths(kwargs, texts, "overlong")
    cache = buffer if buffer is not None else max(1, max_completion_length // 5)
    cache = max(1, min(cache, max_completion_length))
    expected = max_completion_length - cache
    out: list[float | None] = []
    for n in lengths:
        if n <= expected:
            out.append(0.0)
        elif n <= max_completion_length:
            out.append(penalty * (expected - n) / cache)
        else:
            out.append(-penalty)
    return out


def repetition(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    ngram_size: int = 3,
    max_penalty: float = -1.0,
    **kwargs: Any,
) -> list[float | None]:
    """N-gram repetition penalty ("Demystifying Long CoT"): max_penalty x the share of repeated word n-grams."""
    out: list[float | None] = []
    for text in _texts(completions):
        words = text.lower().split()
        if len(words) < ngram_size or ngram_size < 1:
            out.append(0.0)
            continue
        grams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
        repeated = 1.0 - len(set(grams)) / len(grams)
        out.append(repeated * max_penalty)
    return out


_STEP = re.compile(r"(?:Step \d+[:.)]|^\s*\d+[.)]\s|^\s*[-*]\s|\bFirst,|\bSecond,|\bThird,|\bNext,|\bThen,|\bFinally,)", re.M)


def reasoning_steps(
    prompts: Sequence[Any], completions: Sequence[Any], *, target: int = 3, **kwargs: Any
) -> list[float | None]:
    """min(1, steps / target): rewards laying reasoning out in explicit steps (as in open-r1)."""
    return [min(1.0, len(_STEP.findall(t)) / max(1, target)) for t in _texts(completions)]
