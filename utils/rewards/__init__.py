"""GRPO reward functions (TRL calling convention), their registry and recipe validation."""

from utils.rewards._rewards import (
    REWARDS,
    accuracy,
    build_reward_functions,
    check_reward,
    completion_text,
    format_soft,
    format_strict,
    length,
    overlong,
    reasoning_steps,
    repetition,
    tag_count,
)

__all__ = [
    "REWARDS",
    "accuracy",
    "build_reward_functions",
    "check_reward",
    "completion_text",
    "format_soft",
    "format_strict",
    "length",
    "overlong",
    "reasoning_steps",
    "repetition",
    "tag_count",
]
