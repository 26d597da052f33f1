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


def misbehaves(prompts: list, completions: list, *, how: str = "raise", from_step: int = 2,
               trainer_state: Any = None, **kwargs: Any) -> Any:
    """Scores 0.5 each, until training step `from_step`; from then on it fails as `how` says: raise, short (one
    reward too few), scalar (one float for the batch), nan or inf (in the first place)."""
    step = trainer_state.global_step + 1 if trainer_state is not None else from_step  # the step being scored
    if step < from_step:
        return [0.5] * len(completions)
    if how == "raise":
        raise ZeroDivisionError("division by zero")
    if how == "short":
        return [0.5] * (len(completions) - 1)
    if how == "scalar":
        return 0.5
    return [float(how)] + [0.5] * (len(completions) - 1)
