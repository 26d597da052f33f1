"""Planted rewards for the learning-signal tests, named by import path in recipes as a user names a custom one.

Keyed on the problem text, so which groups agree is decided by the prompt, not by what a random model writes.
"""

from __future__ import annotations

import zlib
from typing import Any


def problem_of(prompt: Any) -> str:
    if isinstance(prompt, list):
        return next(m["content"] for m in reversed(prompt) if m.get("role") == "user")
    return str(prompt)


def spreads(prompt: Any) -> bool:
    """Half of the problems (by a hash of their text) get rewards that differ within a group."""
    return zlib.crc32(problem_of(prompt).encode()) % 2 == 0


def half_constant(prompts: list, completions: list, **_: Any) -> list[float]:
    """The chosen half: distinct characters of the completion (a random model's samples differ); the other
    half: 0.0 for every completion, so their groups all agree."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [len(set(t)) / 10.0 if spreads(p) else 0.0 for p, t in zip(prompts, texts, strict=True)]


def constant(prompts: list, completions: list, **_: Any) -> list[float]:
    """The same reward for everything: every group agrees, nothing to learn."""
    return [0.5 for _ in completions]
