"""What every reward needs: the completion's text, the gold answers, token counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

RewardFunction = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the assistant message(s) of a conversational one."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        parts = [
            str(m.get("content") or "")
            for m in completion
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        ]
        return "".join(parts)
    return str(completion)


def _texts(completions: Sequence[Any]) -> list[str]:
    return [completion_text(c) for c in completions]


def _golds(kwargs: dict[str, Any], n: int, reward: str) -> list[Any]:
    golds = kwargs.get("answer")
    if golds is None:
        raise ValueError(f"the {reward} reward needs the dataset's 'answer' column (gold final answers)")
    if isinstance(golds, (str, int, float)):
        golds = [golds] * n
    if len(golds) != n:
        raise ValueError(f"the {reward} reward got {len(golds)} answers for {n} completions")
    return list(golds)


def _token_lengths(kwargs: dict[str, Any], texts: list[str], reward: str) -> list[int]:
    ids = kwargs.get("completion_ids")
    if ids is None:
        raise ValueError(f"the {reward} reward needs completion_ids (token ids; TRL passes them)")
    if len(ids) != len(texts):
        raise ValueError(f"the {reward} reward got {len(ids)} completion_ids for {len(texts)} completions")
    return [len(x) for x in ids]
