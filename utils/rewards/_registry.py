"""Which rewards a recipe may name, their parameter checks, and binding them for GRPOTrainer.

A `rewards:` key is either a registry name (`accuracy`, `overlong`...) or a custom reward's import
path (`my_pkg.rewards.brevity`), as in TRL's own grpo script: the module is imported with importlib
when the recipe is validated, so a wrong path fails at load time with one line. A custom reward is
called like a registry one (`f(prompts, completions, **kwargs)`) and logged by TRL under its full
path (`rewards/my_pkg.rewards.brevity/mean`); the mapping form passes its other keys as keyword
arguments (`{weight: 0.2, target: 100}`), which must be named parameters of the function.

Every call is checked, registry and custom rewards alike (BoundReward): a reward that returns a scalar, a list of
the wrong length or a value that is not a number is one line naming it; one that raises or returns NaN or inf
stops the run with one line, or (`rewards_on_error: skip`) scores those completions as no reward (None).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from utils.answers import NUMBER_PATTERN
from utils.errors import UserError, first_line
from utils.formats import get_format
from utils.rewards._common import RewardFunction
from utils.rewards._correctness import accuracy, length
from utils.rewards._format import format_soft, format_strict, tag_count
from utils.rewards._shaping import overlong, reasoning_steps, repetition

REWARDS: dict[str, RewardFunction] = {
    "accuracy": accuracy,
    "format": format_strict,
    "format_strict": format_strict,
    "format_soft": format_soft,
    "tag_count": tag_count,
    "length": length,
    "overlong": overlong,
    "repetition": repetition,
    "reasoning_steps": reasoning_steps,
}
# rewards_on_error: what a reward that raises or returns NaN / inf does to the run (stop: one line, exit 2;
# skip: those completions score None, which TRL leaves out of the reward sum, with a warning and a count)
ON_ERROR_MODES = ("stop", "skip")
# Parameters the builder fills in from the recipe, not the user.
_BOUND_FROM_RECIPE = {"prompt_format", "max_completion_length"}
# The two arguments TRL passes positionally-by-name to every reward: not settable in a recipe.
_CALL_ARGUMENTS = {"prompts", "completions"}


def _positive(value: float) -> bool:
    return value > 0


def _at_least_one(value: float) -> bool:
    return value >= 1 and float(value).is_integer()


# Parameter rules where a wrong sign silently inverts a reward (a penalty turned into a bonus).
_RULES: dict[tuple[str, str], tuple[Callable[[float], bool], str]] = {
    ("repetition", "max_penalty"): (lambda v: v <= 0, "must be <= 0 (a penalty; a positive value rewards repetition)"),
    ("repetition", "ngram_size"): (_at_least_one, "must be a whole number >= 1"),
    ("overlong", "penalty"): (lambda v: v >= 0, "must be >= 0 (the size of a punishment; negative rewards overlong)"),
    ("overlong", "buffer"): (_positive, "must be > 0 (tokens before the maximum where punishment starts)"),
    ("length", "max_len"): (_positive, "must be > 0 (tokens)"),
    ("reasoning_steps", "target"): (_at_least_one, "must be a whole number >= 1"),
}
# (reward, smaller, larger): ranges that must not be reversed
_ORDERED = [("length", "min_value_correct", "max_value_correct"), ("length", "min_value_wrong", "max_value_wrong")]


def resolve_reward(name: str) -> RewardFunction:
    """The function behind a `rewards:` key: a registry name or an import path. ValueError says why not."""
    if name in REWARDS:
        return REWARDS[name]
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        close = difflib.get_close_matches(name, list(REWARDS), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (choose from {', '.join(REWARDS)}, or an import path)"
        raise ValueError(f"unknown reward{hint}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure is the recipe's problem, named in one line
        raise ValueError(f"cannot import '{module_name}' ({first_line(err)})") from None
    fn = getattr(module, attribute, None)
    if fn is None:
        raise ValueError(f"'{module_name}' has no attribute '{attribute}'")
    if not callable(fn):
        raise ValueError(f"'{name}' is not callable (it is a {type(fn).__name__})")
    return fn


def reward_params(name: str) -> dict[str, Any]:
    """A reward's settable parameters and their defaults (inspect.Parameter.empty where there is none)."""
    sig = inspect.signature(resolve_reward(name))
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind in named and p.name not in _BOUND_FROM_RECIPE | _CALL_ARGUMENTS
    }


def check_reward(name: str, spec: Any) -> str | None:
    """The problem with one `rewards:` entry as 'rewards.NAME...: message', or None when it is fine."""
    try:
        params = reward_params(name)
    except ValueError as err:
        return f"rewards.{name}: {err}"
    if not isinstance(spec, dict):
        return None
    for key, value in spec.items():
        if key == "weight":
            continue
        if key not in params:
            return f"rewards.{name}.{key}: unknown parameter{_param_hint(name, str(key), params)}"
        problem = _check_value(name, str(key), value, params[key])
        if problem:
            return f"rewards.{name}.{key}: {problem}"
    for reward, low, high in _ORDERED:
        if reward == name and low in spec and high in spec and _number_like(spec[low], 0.0) and _number_like(spec[high], 0.0):
            if float(spec[low]) > float(spec[high]):
                return f"rewards.{name}.{low}: must not exceed {high} ({spec[low]} > {spec[high]})"
    return None


def _param_hint(name: str, key: str, params: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" ({name} takes {', '.join(params)})" if params else f" ({name} takes no parameters)"


def _check_value(name: str, key: str, value: Any, default: Any) -> str | None:
    if name not in REWARDS:
        return None  # a custom reward's parameters are whatever its author accepts
    if not _number_like(value, default):
        return f"expected a number, got {value!r}"
    rule = _RULES.get((name, key))
    if rule and value is not None and not rule[0](float(value)):
        return f"{rule[1]}, got {value!r}"
    return None


def _number_like(value: Any, default: Any) -> bool:
    if isinstance(value, bool):
        return False
    if value is None:
        return default is None
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        return NUMBER_PATTERN.match(value.strip()) is not None
    return isinstance(value, (int, float))


def _as_number(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        value = float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_reward_functions(
    spec: dict[str, float | dict], prompt_format: str, max_completion_length: int, on_error: str = "stop"
) -> tuple[list[Callable], list[float]]:
    """Reward functions and weights from a validated recipe's `rewards:` section, for GRPOTrainer + reward_weights.

    Each function carries `__name__` = the reward's key (registry name or import path), so TRL logs
    `rewards/<name>/mean` apart; `on_error` is the recipe's rewards_on_error.
    """
    get_format(prompt_format)  # a recipe's was validated; a caller's own is checked here, before any reward runs
    if not isinstance(spec, dict) or not spec:
        raise UserError(f"rewards: expected a mapping of reward name -> weight, got {spec!r}")
    if on_error not in ON_ERROR_MODES:
        raise UserError(f"rewards_on_error: {on_error!r} is not one of {', '.join(ON_ERROR_MODES)}")
    functions: list[Callable] = []
    weights: list[float] = []
    for key, entry in spec.items():
        name = str(key)  # checked once, when the recipe loaded (utils.config calls check_reward)
        weight, params = _weight_and_params(name, entry)
        fn = resolve_reward(name)
        accepted = inspect.signature(fn).parameters
        if "prompt_format" in accepted:
            params["prompt_format"] = prompt_format
        if "max_completion_length" in accepted:
            params["max_completion_length"] = max_completion_length
        if fn is length and "max_len" not in params:
            params["max_len"] = max_completion_length  # the cosine spans the whole generation budget
        functions.append(BoundReward(name, fn, params, on_error))
        weights.append(weight)
    return functions, weights


def _weight_and_params(name: str, entry: Any) -> tuple[float, dict[str, Any]]:
    if isinstance(entry, dict):
        if "weight" not in entry or not _number_like(entry["weight"], 0.0):
            raise UserError(f"rewards.{name}: a reward given as a mapping needs a numeric 'weight'")
        defaults = reward_params(name)
        custom = name not in REWARDS
        params = {k: v if custom else _as_number(v, defaults[k]) for k, v in entry.items() if k != "weight"}
        return float(entry["weight"]), params
    if _number_like(entry, 0.0):
        return float(entry), {}
    raise UserError(f"rewards.{name}: expected a weight (number), got {entry!r}")


class BoundReward:
    """A reward with its recipe parameters bound; picklable, named for TRL's per-reward logs, and checked per call.

    What a call returns must be one number (or None) per completion: anything else is the reward's bug, a
    UserError naming it, whatever `on_error` says. An exception or a NaN / inf is refused the same way under
    "stop"; under "skip" those completions score None (a warning the first time, then a count: `skipped`, and
    rewards/<name>/skipped in the run's metrics).
    """

    def __init__(self, name: str, fn: RewardFunction, params: dict[str, Any], on_error: str = "stop") -> None:
        self.__name__ = name
        self.fn = fn
        self.params = dict(params)
        self.on_error = on_error
        self.skipped = 0  # completions scored None because this reward failed on them (on_error "skip")
        self.__doc__ = fn.__doc__

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        where = _step_of(kwargs.get("trainer_state"))
        try:
            # recipe parameters win over same-named dataset columns
            returned = self.fn(prompts, completions, **{**kwargs, **self.params})
        except Exception as err:  # noqa: BLE001 - whatever a reward's own code raises, named in one line
            failure = f"raised {type(err).__name__} ({first_line(err)}){where}"
            return self._failed(failure, list(range(len(completions))), [None] * len(completions), kwargs)
        values = self._numbers(returned, len(completions), where)
        # NaN is refused rather than passed on: TRL would read it as None (skip) and a 0/0 bug would silently
        # train on fewer rewards; inf would make the group's advantages NaN. None is how a reward skips one.
        bad = [i for i, v in enumerate(values) if v is not None and not math.isfinite(v)]
        if not bad:
            return values
        failure = f"returned {values[bad[0]]} for completion {bad[0]}{where}"
        return self._failed(failure, bad, values, kwargs, fix="fix the reward (None skips a completion)")

    def _numbers(self, returned: Any, expected: int, where: str) -> list[float | None]:
        """The call's result as one float or None per completion; a UserError for any other shape."""
        fix = "return one reward per completion (a number, or None to skip one)"
        items = None if isinstance(returned, (str, bytes, dict)) else _as_list(returned)
        if items is None:
            raise UserError(f"rewards.{self.__name__} returned {_shown(returned)}{where}, "
                            f"not a list of {expected} rewards: {fix}")
        if len(items) != expected:
            raise UserError(f"rewards.{self.__name__} returned {len(items)} rewards for {expected} completions"
                            f"{where}: {fix}")
        values: list[float | None] = []
        for i, item in enumerate(items):
            number = _as_float(item)
            if item is not None and number is None:
                raise UserError(f"rewards.{self.__name__} returned {_shown(item)} for completion {i}{where}: {fix}")
            values.append(number)
        return values

    def _failed(self, failure: str, positions: list[int], values: list[float | None], kwargs: dict[str, Any],
                fix: str = "fix the reward") -> list[float | None]:
        """Under "stop", the failure as one line; under "skip", None at `positions`, warned once and counted."""
        name = f"rewards.{self.__name__}"
        if self.on_error != "skip":
            raise UserError(f"{name} {failure}: {fix}, or set rewards_on_error: skip to score such completions "
                            "as no reward")
        if not self.skipped:
            from tqdm import tqdm  # its write clears a progress bar on stderr and draws it again below

            tqdm.write(f"warning: {name} {failure}: scored as no reward (rewards_on_error: skip); later failures "
                       f"are counted in metrics.jsonl as rewards/{self.__name__}/skipped", file=sys.stderr)
        self.skipped += len(positions)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):  # TRL's hook: averaged over the logging step, into metrics.jsonl
            log_metric(f"rewards/{self.__name__}/skipped", float(len(positions)))
        skipped = set(positions)
        return [None if i in skipped else v for i, v in enumerate(values)]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"<reward {self.__name__}({params})>"


def _step_of(trainer_state: Any) -> str:
    """' at step N' for the step being scored (TRL passes its state; global_step counts finished steps)."""
    step = getattr(trainer_state, "global_step", None)
    return f" at step {step + 1}" if isinstance(step, int) else ""


def _as_list(returned: Any) -> list[Any] | None:
    try:
        return list(returned)  # a list, tuple, array or tensor of rewards
    except TypeError:  # a scalar (float, 0-d array or tensor, None)
        return None


def _as_float(item: Any) -> float | None:
    if item is None or isinstance(item, (str, bytes)):
        return None
    try:
        return float(item)  # ints, bools, numpy and 0-d torch numbers alike
    except (TypeError, ValueError):
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:40]}... (a {type(value).__name__})" if len(text) > 40 else f"{text} (a {type(value).__name__})"
