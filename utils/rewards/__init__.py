"""GRPO reward functions with TRL's calling convention, and the registry recipes weight by name.

Every reward is `f(prompts, completions, **kwargs) -> list[float | None]`. TRL passes the dataset
columns as keyword arguments (`answer=[...]`, `problem=[...]`), plus `completion_ids` and
`trainer_state`. Completions are strings or `[{"role": "assistant", "content": ...}]`. None skips a
sample: rewards that need the gold answer return None where the gold itself cannot be read, rather
than rewarding or punishing the model for the dataset's fault.

Parameters (format, lengths, penalties) are keyword-only arguments with defaults; a recipe sets them
with `rewards: {overlong: {weight: 1.0, buffer: 256}}` and `build_reward_functions` binds them, checking
every call's result (one number or None per completion; the recipe's `rewards_on_error`, one of
ON_ERROR_MODES, says whether a reward that raises or returns NaN / inf stops the run or scores None).

| name | what it rewards |
|---|---|
| accuracy | 1 when the extracted final answer is mathematically equal to `answer`, else 0 |
| format / format_strict | 1 when the completion has exactly the prompt format's layout, else 0 |
| format_soft | 1 when the format's tags appear in order anywhere, else 0 |
| tag_count | partial credit (0-1) per well-placed tag, so the format is learnable early |
| length | cosine-scaled by correctness ("Demystifying Long CoT"): short right answers best, long wrong ones least bad; length in tokens (completion_ids, which TRL passes), else in whitespace words |
| overlong | DAPO soft overlong punishment: 0 up to max - buffer tokens, then linear down to -1 at max |
| repetition | minus the share of repeated word n-grams (0 = no repeats, -1 = all repeats) |
| reasoning_steps | min(1, steps / target) for "Step 1:", "1.", bullets, "First," "Next," "Finally," |
"""

from utils.rewards._common import RewardFunction, completion_text
from utils.rewards._correctness import accuracy, length
from utils.rewards._format import format_soft, format_strict, tag_count
from utils.rewards._registry import ON_ERROR_MODES, REWARDS, build_reward_functions, check_reward
from utils.rewards._shaping import overlong, reasoning_steps, repetition

__all__ = [
    "ON_ERROR_MODES",
    "REWARDS",
    "RewardFunction",
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
