"""How a run samples its completions: the recipe's `training:` values, TRL's GRPOConfig defaults elsewhere.

One answer for everything that must sample as training does (scripts/pass_rate.py) or name that sampling
(the pass-rate file's key).
"""

from __future__ import annotations

from typing import Any

# GRPOConfig fields that decide what a completion can be (max_completion_length: where it is cut off).
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_completion_length",
                   "generation_kwargs")


def trl_default(name: str) -> Any:
    """The installed TRL's GRPOConfig default for field `name`."""
    from trl import GRPOConfig  # heavy import: only when asked

    field = GRPOConfig.__dataclass_fields__[name]
    return field.default_factory() if callable(field.default_factory) else field.default


def sampling_settings(training: dict[str, Any]) -> dict[str, Any]:
    """{field: value} for SAMPLING_FIELDS as a run with this `training:` section samples."""
    return {name: training[name] if name in training else trl_default(name) for name in SAMPLING_FIELDS}
