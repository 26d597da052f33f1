"""Learning-signal diagnostics: the per-step metrics that say whether GRPO has anything to learn from, and the
warnings a run prints when it has not, or when its completions collapse.

GRPO learns only from groups whose completions disagree: a group whose rewards all agree has zero advantage.
SignalWatch is plain bookkeeping over metrics.jsonl records (RunMonitor feeds it each logged step), so each
rule can be tested on planted sequences; it holds no model and imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Metric names (metrics.jsonl, plots): TRL's own, and the ones this suite adds.
ZERO_STD = "frac_reward_zero_std"  # TRL: share of completions in groups whose rewards all agree
CLIPPED = "completions/clipped_ratio"  # TRL: share of completions cut off at max_completion_length
MEAN_LENGTH = "completions/mean_length"  # TRL: tokens per completion
GROUP_STD = "reward_std_within_group"  # ours: mean over groups of the reward's std inside the group
EXTRACTION = "completions/extraction_rate"  # ours: share of completions with a final answer extract_answer reads
DYNAMIC = "dynamic_sampling/"  # ours: prefix of the dynamic sampling metrics (utils/training/_dynamic_sampling)
KEPT = DYNAMIC + "kept_fraction"  # groups with a spread of rewards / groups generated this step

# When a warning fires. A condition must hold for STEPS logged steps in a row: with 2-8 prompts a step a single
# step is noise (`make demo` had all-agree steps now and then in runs that learned).
STEPS = 5
# 4 groups in 5 teach nothing: the update rests on one group, or on none.
ZERO_STD_ABOVE = 0.8
# Nearly every sample cut off: its answer never arrives, so an accuracy reward scores 0 whatever it would have said
# (`make demo`'s collapse: clipped_ratio 1.0 from step 6 on, then degenerate text).
CLIPPED_ABOVE = 0.9
# Tokens: a bare number and end-of-text, no room for any working (how the collapsed demo seeds ended).
SHORT_BELOW = 5.0
# The extraction rate "falls" when it is under half its starting value; the start is the mean of the first
# BASELINE_STEPS steps (one step of 8-32 completions is noisy), and one under MIN_BASELINE has little to lose.
FALL_RATIO = 0.5
BASELINE_STEPS = 3
MIN_BASELINE = 0.2

_PASS_RATE_ADVICE = "the pass-rate filter (scripts/pass_rate.py RECIPE, then data.filters.pass_rate: [0.1, 0.9])"


def _zero_advantage(step: int, value: float, dynamic: bool) -> str:
    tail = ("; dynamic sampling is making up for it with extra generation (see dynamic_sampling/extra_seconds)"
            if dynamic else "; or dynamic_sampling.enabled: true to drop those groups and draw further problems")
    return (f"warning: over {ZERO_STD_ABOVE:.0%} of the groups had all-equal rewards, so no learning signal, for "
            f"{STEPS} steps in a row (step {step}: {value:.0%}): the problems are too hard (or too easy) for this "
            f"model. Try easier data (data.level, an easier dataset), {_PASS_RATE_ADVICE}, longer completions "
            f"(training.max_completion_length) if they are cut off, or a higher training.temperature" + tail)


def _truncated(step: int, value: float, dynamic: bool) -> str:
    return (f"warning: over {CLIPPED_ABOVE:.0%} of the completions ran to max_completion_length for {STEPS} steps "
            f"in a row (step {step}: {value:.0%}): cut off before their answer, they score 0. Raise "
            "training.max_completion_length, set training.mask_truncated_completions: true so cut-off samples do "
            "not teach, or lower training.learning_rate if completions were shorter earlier (degenerate repetition)")


def _short(step: int, value: float, dynamic: bool) -> str:
    return (f"warning: completions averaged under {SHORT_BELOW:g} tokens for {STEPS} steps in a row (step {step}: "
            f"{value:.1f}): the model has collapsed to bare answers with no working. Lower training.learning_rate, "
            "add a KL term (training.beta: 0.04) or a format reward, and resume from an earlier checkpoint")


def _extraction(step: int, value: float, dynamic: bool) -> str:
    return (f"warning: completions with a readable final answer fell below {FALL_RATIO:.0%} of their starting "
            f"share for {STEPS} steps in a row (step {step}: {value:.0%}): the model is losing the answer format. "
            "Lower training.learning_rate, raise the format reward's weight (rewards.format), or resume from an "
            "earlier checkpoint (best/ when eval is on)")


@dataclass
class _Rule:
    key: str
    holds: Callable[[float, SignalWatch], bool]
    message: Callable[[int, float, bool], str]
    streak: int = 0
    warned: bool = False  # in the current episode: the rule re-arms once its condition stops holding


@dataclass
class SignalWatch:
    """Feeds on metrics records; `observe` returns the warnings due at this record (each once per episode: an
    episode is a run of steps where its condition holds)."""

    dynamic_sampling: bool = False  # the zero-advantage advice changes when dynamic sampling is already on
    extraction_start: list[float] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=lambda: [
        _Rule(ZERO_STD, lambda v, w: v > ZERO_STD_ABOVE, _zero_advantage),
        _Rule(CLIPPED, lambda v, w: v > CLIPPED_ABOVE, _truncated),
        _Rule(MEAN_LENGTH, lambda v, w: v < SHORT_BELOW, _short),
        _Rule(EXTRACTION, lambda v, w: w._extraction_fell(v), _extraction),
    ])

    def observe(self, record: dict[str, Any]) -> list[str]:
        warnings = []
        for rule in self.rules:
            value = record.get(rule.key)
            if not isinstance(value, (int, float)):  # not logged at this record (an eval record, an old TRL)
                continue
            if not rule.holds(float(value), self):
                rule.streak, rule.warned = 0, False
                continue
            rule.streak += 1
            if rule.streak >= STEPS and not rule.warned:
                rule.warned = True
                warnings.append(rule.message(int(record.get("step", 0)), float(value), self.dynamic_sampling))
        return warnings

    def _extraction_fell(self, value: float) -> bool:
        if len(self.extraction_start) < BASELINE_STEPS:
            self.extraction_start.append(value)
            return False
        start = sum(self.extraction_start) / len(self.extraction_start)
        return start >= MIN_BASELINE and value < FALL_RATIO * start
