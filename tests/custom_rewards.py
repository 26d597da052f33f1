"""A custom reward module, named in recipes by import path (`rewards: {tests.custom_rewards.brevity: 0.2}`)."""

from __future__ import annotations

from typing import Any

NOT_A_FUNCTION = 3  # a recipe naming this must be refused: it is not callable


def brevity(prompts: list, completions: list, *, target_words: int = 20, **kwargs: Any) -> list[float]:
    """1.0 at or under `target_words` words, falling linearly to 0 at twice that."""
    out = []
    for completion in completions:
        text = completion[0]["content"] if isinstance(completion, list) else completion
        excess = max(0, len(text.split()) - target_words)
        out.append(max(0.0, 1.0 - excess / target_words))
    return out
