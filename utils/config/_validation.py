"""Validation: a raw recipe mapping -> a typed Recipe, every mistake a UserError naming the key and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import re
import types
import typing
from pathlib import Path
from typing import Any

from utils.answers import NUMBER_PATTERN
from utils.benchmarks import KNOWN, OPENR1_VAL, canonical_name, unknown_benchmark
from utils.config._sections import (
    DEFAULT_REWARDS,
    SECTIONS,
    TOP_LEVEL_KEYS,
    TRAINING_RESERVED,
    DataSection,
    Recipe,
)
from utils.errors import UserError


def recipe_from_dict(raw: dict[str, Any], where: str = "recipe", source: Path | None = None) -> Recipe:
    """Validate a recipe mapping (no `extends`) and build the Recipe."""
    unknown = [k for k in raw if k not in TOP_LEVEL_KEYS or k == "extends"]
    for key in unknown:
        raise UserError(f"{where}: {_unknown_key_message(str(key), TOP_LEVEL_KEYS[1:])}")
    kwargs: dict[str, Any] = {"source": source}
    for name, cls in SECTIONS.items():
        kwargs[name] = _build_section(cls, raw.get(name, {}), name, where)
    kwargs["rewards"] = _check_rewards(raw.get("rewards", DEFAULT_REWARDS), where)
    kwargs["rewards_on_error"] = _check_on_error(raw.get("rewards_on_error", "stop"), where)
    kwargs["training"] = check_training(raw.get("training", {}), where)
    recipe = Recipe(**kwargs)
    _check_consistency(recipe, where)
    return recipe


def sections_from_dict(raw: dict[str, Any], where: str = "recipe") -> Recipe:
    """A Recipe validated like `recipe_from_dict` but without a `training:` section, so without
    importing TRL (seconds): for tools that only need the data/prompt settings (explore_data.py)."""
    if raw.get("training"):
        raise UserError(f"{where}: training: not used here (give a recipe file to set training values)")
    for key in raw:
        if key not in TOP_LEVEL_KEYS or key == "extends":
            raise UserError(f"{where}: {_unknown_key_message(str(key), TOP_LEVEL_KEYS[1:])}")
    kwargs: dict[str, Any] = {name: _build_section(cls, raw.get(name, {}), name, where) for name, cls in SECTIONS.items()}
    recipe = Recipe(**kwargs, rewards=_check_rewards(raw.get("rewards", DEFAULT_REWARDS), where),
                    rewards_on_error=_check_on_error(raw.get("rewards_on_error", "stop"), where))
    _check_consistency(recipe, where)
    return recipe


def _unknown_key_message(key: str, valid: typing.Iterable[str], section: str = "") -> str:
    valid = list(valid)
    full = f"{section}.{key}" if section else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
    if len(valid) > 40 and not close:
        hint = ""
    return f"{full}: unknown key{hint}"


def _build_section(cls: type, values: Any, prefix: str, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{where}: {prefix}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise UserError(f"{where}: {_unknown_key_message(str(key), names, prefix)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        key = f"{prefix}.{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build_section(tp, values[f.name], key, where)
            continue
        value = coerce(values[f.name], tp, key, where)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise UserError(f"{where}: {key}: {value!r} is not one of {', '.join(choices)}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any value"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check `value` against type hint `tp`; returns the value (numeric strings -> float)."""
    if _is_number(value) and _text_only(tp):  # YAML types `run_name: 2024` as a number; a name is text
        value = str(value)
    ok, result = _try_coerce(value, tp)
    if not ok:
        raise UserError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_only(tp: Any) -> bool:
    """A plain text field (`str` or `str | None`): no number would be valid there."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return str in args and all(a in (str, type(None)) for a in args)


def _try_coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    if tp is Any or tp is object:
        return True, value
    if tp is type(None):
        return value is None, value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # exact matches first, so "1e-5" stays a str where str is allowed
        for arg in typing.get_args(tp):
            if arg not in (float,) and _try_coerce(value, arg)[0]:
                return _try_coerce(value, arg)
        for arg in typing.get_args(tp):
            ok, result = _try_coerce(value, arg)
            if ok:
                return True, result
        return False, value
    if origin is typing.Literal:
        return value in typing.get_args(tp), value
    if origin in (list, tuple):
        if not isinstance(value, list):
            return False, value
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = []
        for item in value:
            ok, item = _try_coerce(item, inner)
            if not ok:
                return False, value
            items.append(item)
        return True, items
    if origin is dict or tp is dict:
        return isinstance(value, dict), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        # YAML 1.1 reads `1e-5` as a string; users mean a number
        if isinstance(value, str) and NUMBER_PATTERN.match(value.strip()):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = {m.value for m in tp}
        return (value in values or isinstance(value, tp)), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value  # an annotation we cannot check (rare TRL types): TRL checks it later


def _check_rewards(rewards: Any, where: str) -> dict[str, Any]:
    from utils.rewards import check_reward  # lazy: the registry pulls in utils.answers

    if not isinstance(rewards, dict) or not rewards:
        raise UserError(f"{where}: rewards: expected a mapping of reward name -> weight, got {rewards!r}")
    checked: dict[str, Any] = {}
    for name, spec in rewards.items():
        key = f"rewards.{name}"
        problem = check_reward(str(name), spec)
        if problem:
            raise UserError(f"{where}: {problem}")
        if isinstance(spec, dict):
            if "weight" not in spec:
                raise UserError(f"{where}: {key}: a reward given as a mapping needs a 'weight'")
            spec = dict(spec, weight=coerce(spec["weight"], float, f"{key}.weight", where))
        else:
            spec = coerce(spec, float, key, where)
        checked[str(name)] = spec
    return checked


def _check_on_error(value: Any, where: str) -> str:
    from utils.rewards import ON_ERROR_MODES  # lazy, as in _check_rewards

    if value not in ON_ERROR_MODES:
        raise UserError(f"{where}: rewards_on_error: {value!r} is not one of {', '.join(ON_ERROR_MODES)} "
                        "(stop: a reward that raises or returns NaN/inf ends the run; skip: it scores no reward)")
    return str(value)


def grpo_config_fields() -> dict[str, Any]:
    """Init fields of the installed TRL's GRPOConfig, name -> type hint."""
    from trl import GRPOConfig  # heavy import: only when a recipe is validated

    return {f.name: f.type for f in dataclasses.fields(GRPOConfig) if f.init}


# GRPOConfig fields TRL removed, and where their job went: recipes written for older TRL (Unsloth's and open-r1's
# configs all set max_prompt_length) get the replacement, not only "not a field".
TRAINING_REMOVED = {
    "max_prompt_length": "removed from TRL in 0.28: prompts are bounded by data.filters.max_prompt_tokens "
                         "(longer prompts are dropped before training); set that instead",
}
# A value the help text offers as a choice (`True` or 'group', `False`: ...), or the field's own name set to one.
_BOOL_CHOICE = r"`(?:True|False)`\s*(?:or\b|:)|\bor\s+`(?:True|False)`"


def documents_bool(name: str, help_text: str) -> bool:
    """Whether a GRPOConfig field's help text offers True/False as values although its annotation says str
    (scale_rewards: `True` or 'group', `False` or 'none'; fsdp: `fsdp=True`): TRL converts them itself."""
    pattern = f"{_BOOL_CHOICE}|\\b{re.escape(name)}=(?:True|False)\\b"
    return bool(re.search(pattern, help_text))


@functools.cache
def _bool_documented_fields() -> frozenset[str]:
    from trl import GRPOConfig

    return frozenset(f.name for f in dataclasses.fields(GRPOConfig)
                     if f.init and documents_bool(f.name, str(f.metadata.get("help", ""))))


def check_training(training: Any, where: str) -> dict[str, Any]:
    """Check `training:` keys and value types against the installed TRL's GRPOConfig."""
    if training is None:
        return {}
    if not isinstance(training, dict):
        raise UserError(f"{where}: training: expected a mapping of GRPOConfig fields, got {training!r}")
    fields = grpo_config_fields()
    checked = {}
    for key, value in training.items():
        full = f"training.{key}"
        if key in TRAINING_RESERVED:
            raise UserError(f"{where}: {full}: {TRAINING_RESERVED[key]}")
        if key in TRAINING_REMOVED and key not in fields:
            raise UserError(f"{where}: {full}: {TRAINING_REMOVED[key]}")
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where}: {full}: not a field of TRL's GRPOConfig{hint}")
        if isinstance(value, bool) and key in _bool_documented_fields():
            checked[key] = value  # documented as a choice, typed str: TRL maps it (scale_rewards: false -> 'none')
            continue
        checked[key] = coerce(value, fields[key], full, where)
    return checked


# GRPOConfig values TRL accepts but cannot train with (it fails at the first step, or learns nothing).
_TRAINING_BOUNDS: dict[str, tuple[str, float]] = {
    "learning_rate": (">", 0.0),
    "num_generations": (">=", 2),  # GRPO's advantage is relative to the group: one completion has none
    "per_device_train_batch_size": (">", 0),
    "gradient_accumulation_steps": (">", 0),
    "max_completion_length": (">", 0),
    "temperature": (">", 0.0),
    "num_train_epochs": (">", 0.0),
    "beta": (">=", 0.0),
    "max_grad_norm": (">=", 0.0),
}


def _check_training_bounds(training: dict[str, Any], where: str) -> None:
    for key, (op, bound) in _TRAINING_BOUNDS.items():
        value = training.get(key)
        if isinstance(value, (int, float)) and not (value > bound if op == ">" else value >= bound):
            raise UserError(f"{where}: training.{key}: must be {op} {bound:g}, got {value}")
    if training.get("max_steps") == 0:
        raise UserError(f"{where}: training.max_steps: 0 trains nothing (-1 trains num_train_epochs, or a step count)")


def _check_consistency(recipe: Recipe, where: str) -> None:
    """Rules across keys that a per-key type check cannot see."""
    _check_training_bounds(recipe.training, where)
    for key in ("subset",):
        value = getattr(recipe.data, key)
        if value is not None and value <= 0:
            raise UserError(f"{where}: data.{key}: must be a positive number of problems, got {value}")
    if recipe.data.validation < 0:
        raise UserError(f"{where}: data.validation: must be >= 0, got {recipe.data.validation}")
    if recipe.eval.every_steps < 0:
        raise UserError(f"{where}: eval.every_steps: must be >= 0 (0 disables), got {recipe.eval.every_steps}")
    _check_eval_benchmarks(recipe.eval, where)
    if recipe.lora.r <= 0:
        raise UserError(f"{where}: lora.r: must be positive, got {recipe.lora.r}")
    if not 0.0 < recipe.model.gpu_memory_utilization <= 1.0:
        raise UserError(
            f"{where}: model.gpu_memory_utilization: must be in (0, 1], got {recipe.model.gpu_memory_utilization}"
        )
    if recipe.model.vllm_standby and not recipe.model.fast_inference:
        raise UserError(f"{where}: model.vllm_standby: only used with model.fast_inference: true (it frees Unsloth's "
                        "vLLM engine between generations); set model.fast_inference: true or remove it")
    _check_synthetic(recipe.data, where)
    if recipe.dynamic_sampling.max_extra_batches < 1:
        raise UserError(f"{where}: dynamic_sampling.max_extra_batches: must be >= 1 (extra generation batches a "
                        f"step may draw), got {recipe.dynamic_sampling.max_extra_batches}")
    if not 1.0 <= recipe.dynamic_sampling.oversample <= 16.0:
        raise UserError(f"{where}: dynamic_sampling.oversample: must be between 1 and 16 (prompts generated a round, "
                        f"as a multiple of those a step trains on), got {recipe.dynamic_sampling.oversample}")
    columns = recipe.data.columns
    if recipe.data.format == "generic" and ("problem" not in columns or not {"answer", "solution"} & set(columns)):
        raise UserError(
            f"{where}: data.columns: the generic format needs a 'problem' column and an 'answer' "
            "(or 'solution') column, e.g. {problem: question, answer: final_answer}"
        )
    _check_learning_signal(recipe, where)
    filters = recipe.data.filters
    filters.decontaminate = [canonical_name(name) for name in filters.decontaminate]  # gsm8k_test: a note
    if filters.decontaminate_ngram < 1:
        raise UserError(f"{where}: data.filters.decontaminate_ngram: must be >= 1, got {filters.decontaminate_ngram}")
    if filters.max_prompt_tokens is not None and filters.max_prompt_tokens <= 0:
        raise UserError(f"{where}: data.filters.max_prompt_tokens: must be positive, got {filters.max_prompt_tokens}")
    if filters.min_correctness_count is not None and filters.min_correctness_count < 0:
        raise UserError(
            f"{where}: data.filters.min_correctness_count: must be >= 0, got {filters.min_correctness_count}"
        )


def _check_learning_signal(recipe: Recipe, where: str) -> None:
    """data.filters.pass_rate (a band of pass rates, bounds excluded) and data.curriculum (an order TRL keeps)."""
    band = recipe.data.filters.pass_rate
    if band is not None and (len(band) != 2 or not 0.0 <= band[0] < band[1] <= 1.0):
        raise UserError(f"{where}: data.filters.pass_rate: expected [low, high] with 0 <= low < high <= 1 (problems "
                        f"with low < pass rate < high are kept, e.g. [0.1, 0.9]), got {band}")
    curriculum = recipe.data.curriculum
    if recipe.data.filters.pass_rate_file and band is None and curriculum.by != "pass_rate":
        raise UserError(f"{where}: data.filters.pass_rate_file: only read with data.filters.pass_rate or "
                        "data.curriculum.by: pass_rate (set one, or remove it)")
    if curriculum.by == "source" and not curriculum.sources:
        raise UserError(f"{where}: data.curriculum.sources: by: source needs the source column's values in the order "
                        "to train on them, e.g. sources: [gsm8k, math]")
    if curriculum.sources and curriculum.by != "source":
        raise UserError(f"{where}: data.curriculum.sources: only used with by: source (by is {curriculum.by!r})")
    if curriculum.by != "none" and recipe.training.get("shuffle_dataset"):
        raise UserError(f"{where}: training.shuffle_dataset: true would shuffle away data.curriculum's order "
                        "(remove one of them)")


SYNTHETIC_LEVELS = range(1, 6)  # the levels of utils.data's problem generator


def _check_synthetic(data: DataSection, where: str) -> None:
    """kind/n/level drive the generator (`dataset: synthetic`); set on another dataset they would be ignored."""
    if data.dataset != "synthetic":
        defaults = DataSection()
        for key in ("kind", "n", "level"):
            if getattr(data, key) != getattr(defaults, key):
                raise UserError(f"{where}: data.{key}: only used with data.dataset: synthetic "
                                f"(the dataset is {data.dataset!r}; remove data.{key})")
        return
    levels = data.level if isinstance(data.level, list) else [data.level]
    for level in levels or [0]:
        if level not in SYNTHETIC_LEVELS:
            listed = ", or a list of them" if isinstance(data.level, list) else ""
            raise UserError(f"{where}: data.level: must be 1 to 5 (1 easiest){listed}, got {data.level}")
    if len(set(levels)) != len(levels):
        raise UserError(f"{where}: data.level: {data.level} names a level twice (list each level once)")
    if data.n <= 0:
        raise UserError(f"{where}: data.n: must be a positive number of problems, got {data.n}")


EVAL_ENTRY_KEYS = {"name": str, "samples": int, "max_new_tokens": int}


def _check_eval_benchmarks(section: Any, where: str) -> None:
    """eval.benchmarks entries ({name, samples, max_new_tokens}), their names (old ones renamed), eval.best_by."""
    for i, entry in enumerate(section.benchmarks or []):
        key = f"eval.benchmarks[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{where}: {key}: expected {{name: BENCHMARK, samples: N (optional)}}, got {entry!r}")
        for field_name, value in entry.items():
            if field_name not in EVAL_ENTRY_KEYS:
                raise UserError(f"{where}: {_unknown_key_message(str(field_name), EVAL_ENTRY_KEYS, key)}")
            coerce(value, EVAL_ENTRY_KEYS[field_name], f"{key}.{field_name}", where)
        entry["name"] = canonical_name(entry["name"])
    section.benchmark = canonical_name(section.benchmark)
    section.best_by = section.best_by and canonical_name(section.best_by)
    if section.benchmarks and section.benchmark != OPENR1_VAL:
        raise UserError(f"{where}: eval.benchmark: not used with eval.benchmarks (list {section.benchmark} there)")
    names = [e["name"] for e in section.watched()]
    for name, entry in zip(names, section.watched(), strict=True):
        if name not in KNOWN and not Path(name).expanduser().exists():
            raise unknown_benchmark(name, f"{where}: eval: {name}")
        if entry["samples"] <= 0 or entry["max_new_tokens"] <= 0:
            raise UserError(f"{where}: eval: {name}: samples and max_new_tokens must be positive")
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    if twice:
        raise UserError(f"{where}: eval.benchmarks: {twice[0]} is listed twice")
    if section.best_by is not None and section.best_by not in names:
        raise UserError(f"{where}: eval.best_by: {section.best_by!r} is not a watched benchmark ({', '.join(names)})")
