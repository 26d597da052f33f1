"""YAML recipe -> typed, validated Recipe.

A recipe has sections (model, lora, data, prompt, rewards, training, eval, output). Our own
sections are dataclasses below; `training:` holds TRL GRPOConfig field names and is checked
against the installed TRL. Every mistake is a UserError naming the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.errors import UserError

# ---------------------------------------------------------------------------------------------
# Sections. Defaults are what a recipe gets when it leaves a key out; `choices` metadata limits
# string values. Field comments are shown nowhere: the recipes carry the user-facing comments.


def _choice(default: str, *choices: str) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class ModelSection:
    name: str = "Qwen/Qwen2.5-0.5B-Instruct"  # hub id or local folder (full checkpoint or LoRA adapter)
    backend: str = _choice("auto", "auto", "unsloth", "hf")
    load_in_4bit: bool = False
    fast_inference: bool = False  # vLLM-backed generation (unsloth backend / TRL use_vllm)
    cpu_bf16_generation: bool = True  # CPU + bf16 training: sample from a merged bf16 copy (utils/cpu_generation)
    max_seq_length: int = 1536
    gpu_memory_utilization: float = 0.5
    max_lora_rank: int | None = None  # defaults to lora.r
    dtype: str = _choice("auto", "auto", "bfloat16", "float16", "float32")
    trust_remote_code: bool = False
    revision: str | None = None


@dataclass
class LoraSection:
    enabled: bool = True  # false = full fine-tuning (hf backend)
    r: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


@dataclass
class FiltersSection:
    # Applied in this order by utils.data, each reported with the rows it removed. A filter whose
    # column the data lacks (GSM8K has no question_type) is skipped, and the report says so.
    drop_question_types: list[str] = field(default_factory=lambda: ["proof"])  # add "MCQ" to drop those too
    keep_problem_types: list[str] | None = None  # None = every problem_type
    min_correctness_count: int | None = None  # OpenR1: R1 traces verified correct
    complete_reasoning_only: bool = False  # OpenR1: at least one trace finished its reasoning
    parseable_answer: bool = True  # the verifier can read the gold answer
    max_prompt_tokens: int | None = None  # rendered prompt (template + system); needs the tokenizer
    dedupe: bool = True  # exact-duplicate problems (whitespace-insensitive): first kept
    decontaminate: list[str] = field(default_factory=list)  # math500, gsm8k_test, aime24, amc23 or file paths
    decontaminate_ngram: int = 13  # word n-gram size; shorter problems match on their whole text


@dataclass
class DataSection:
    dataset: str = "open-r1/OpenR1-Math-220k"  # hub id, or a local file / folder
    config: str | None = "default"  # hub config (OpenR1: default | extended | all)
    split: str = "train"
    format: str = _choice("auto", "auto", "openr1", "gsm8k", "math", "generic")
    columns: dict[str, str] = field(default_factory=dict)  # role -> column, e.g. {problem: question, answer: final}
    subset: int | None = None  # seeded subset of N problems (after filters); None = all
    validation: int = 500  # held-out problems when the source has no validation split
    seed: int = 42
    filters: FiltersSection = field(default_factory=FiltersSection)
    cache: bool = True
    cache_dir: str = ".cache/data"


@dataclass
class PromptSection:
    format: str = _choice("think_boxed", "think_boxed", "xml")
    system: str | None = None  # None = the format's own system prompt


@dataclass
class EvalSection:
    every_steps: int = 100  # 0 disables evaluation during training
    benchmark: str = "openr1-val"
    samples: int = 200
    max_new_tokens: int = 1024
    batch_size: int = 16


@dataclass
class OutputSection:
    dir: str = "checkpoints"
    run_name: str | None = None  # None = the recipe's file name
    completions_every: int = 10  # steps between samples written to completions.jsonl
    completions_sample: int = 4
    plots: bool = True


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "lora": LoraSection,
    "data": DataSection,
    "prompt": PromptSection,
    "eval": EvalSection,
    "output": OutputSection,
}
TOP_LEVEL_KEYS = ("extends", *SECTIONS, "rewards", "training")
DEFAULT_REWARDS: dict[str, float] = {"accuracy": 1.0, "format": 0.25}
# GRPOConfig fields the recipe may not set: we own them, and say where to set them instead.
TRAINING_RESERVED = {"output_dir": "set output.dir / output.run_name instead"}


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    prompt: PromptSection = field(default_factory=PromptSection)
    rewards: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_REWARDS))
    training: dict[str, Any] = field(default_factory=dict)
    eval: EvalSection = field(default_factory=EvalSection)
    output: OutputSection = field(default_factory=OutputSection)
    source: Path | None = None

    @property
    def run_name(self) -> str:
        if self.output.run_name:
            return self.output.run_name
        return self.source.stem if self.source else "run"

    @property
    def run_dir(self) -> Path:
        return Path(self.output.dir) / self.run_name

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe, loadable again with `load_recipe` (no `extends`)."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        out["output"]["run_name"] = self.run_name
        out["rewards"] = dict(self.rewards)
        out["training"] = dict(self.training)
        return out

    def dump(self, path: str | Path) -> Path:
        """Write the resolved recipe atomically (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        tmp.replace(path)
        return path


# ---------------------------------------------------------------------------------------------
# Loading


def load_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read a recipe file (following `extends:`), apply `--set key=value` overrides, validate."""
    path = Path(path)
    raw = _load_with_extends(path, chain=())
    recipe = recipe_from_dict(raw, where=str(path), source=path)
    if overrides:
        for override in overrides:
            key, value = parse_override(override)
            _set_path(raw, key, value, where=f"--set {override}")
            recipe_from_dict(raw, where=f"--set {override}", source=path)  # blame the override
        recipe = recipe_from_dict(raw, where=str(path), source=path)
    return recipe


def requested_backend(path: str | Path, overrides: typing.Sequence[str] = ()) -> str:
    """`model.backend` as the recipe asks for it, read without validation (which imports TRL).

    Unsloth must be imported before TRL to patch it, so the backend is known before the recipe is checked.
    """
    raw = _load_with_extends(Path(path), chain=())
    for override in overrides:
        key, value = parse_override(override)
        _set_path(raw, key, value, where=f"--set {override}")
    model = raw.get("model")
    backend = model.get("backend", "auto") if isinstance(model, dict) else "auto"
    return backend if isinstance(backend, str) else "auto"


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"{path}: recipe file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file (expected a YAML recipe)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if data is None:
        raise UserError(f"{path}: recipe is empty")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def _load_with_extends(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        names = " -> ".join(p.name for p in (*chain, resolved))
        raise UserError(f"{path}: extends cycle: {names}")
    data = _read_yaml_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise UserError(f"{path}: extends: expected a file path (str), got {parent!r}")
    parent_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
    if not parent_path.exists():
        raise UserError(f"{path}: extends: {parent_path}: recipe file not found")
    base = _load_with_extends(parent_path, (*chain, resolved))
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else replaces. A None value removes the key (default)."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_KEY_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value` -> (path, value typed as YAML would type it)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_PATH.match(key):
        raise UserError(f"--set {text}: expected section.key=value (e.g. training.learning_rate=1e-5)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {text}: value is not valid YAML") from None
    return key, parsed


def _set_path(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"{where}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


# ---------------------------------------------------------------------------------------------
# Validation


def recipe_from_dict(raw: dict[str, Any], where: str = "recipe", source: Path | None = None) -> Recipe:
    """Validate a recipe mapping (no `extends`) and build the Recipe."""
    unknown = [k for k in raw if k not in TOP_LEVEL_KEYS or k == "extends"]
    for key in unknown:
        raise UserError(f"{where}: {_unknown_key_message(str(key), TOP_LEVEL_KEYS[1:])}")
    kwargs: dict[str, Any] = {"source": source}
    for name, cls in SECTIONS.items():
        kwargs[name] = _build_section(cls, raw.get(name, {}), name, where)
    kwargs["rewards"] = _check_rewards(raw.get("rewards", DEFAULT_REWARDS), where)
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
    recipe = Recipe(**kwargs, rewards=_check_rewards(raw.get("rewards", DEFAULT_REWARDS), where))
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


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check `value` against type hint `tp`; returns the value (numeric strings -> float)."""
    ok, result = _try_coerce(value, tp)
    if not ok:
        raise UserError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return result


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
        if isinstance(value, str) and _NUMBER.match(value.strip()):
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


def grpo_config_fields() -> dict[str, Any]:
    """Init fields of the installed TRL's GRPOConfig, name -> type hint."""
    from trl import GRPOConfig  # heavy import: only when a recipe is validated

    return {f.name: f.type for f in dataclasses.fields(GRPOConfig) if f.init}


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
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where}: {full}: not a field of TRL's GRPOConfig{hint}")
        checked[key] = coerce(value, fields[key], full, where)
    return checked


def _check_consistency(recipe: Recipe, where: str) -> None:
    """Rules across keys that a per-key type check cannot see."""
    for key in ("subset",):
        value = getattr(recipe.data, key)
        if value is not None and value <= 0:
            raise UserError(f"{where}: data.{key}: must be a positive number of problems, got {value}")
    if recipe.data.validation < 0:
        raise UserError(f"{where}: data.validation: must be >= 0, got {recipe.data.validation}")
    if recipe.eval.every_steps < 0:
        raise UserError(f"{where}: eval.every_steps: must be >= 0 (0 disables), got {recipe.eval.every_steps}")
    if recipe.lora.r <= 0:
        raise UserError(f"{where}: lora.r: must be positive, got {recipe.lora.r}")
    if not 0.0 < recipe.model.gpu_memory_utilization <= 1.0:
        raise UserError(
            f"{where}: model.gpu_memory_utilization: must be in (0, 1], got {recipe.model.gpu_memory_utilization}"
        )
    columns = recipe.data.columns
    if recipe.data.format == "generic" and ("problem" not in columns or not {"answer", "solution"} & set(columns)):
        raise UserError(
            f"{where}: data.columns: the generic format needs a 'problem' column and an 'answer' "
            "(or 'solution') column, e.g. {problem: question, answer: final_answer}"
        )
    filters = recipe.data.filters
    if filters.decontaminate_ngram < 1:
        raise UserError(f"{where}: data.filters.decontaminate_ngram: must be >= 1, got {filters.decontaminate_ngram}")
    if filters.max_prompt_tokens is not None and filters.max_prompt_tokens <= 0:
        raise UserError(f"{where}: data.filters.max_prompt_tokens: must be positive, got {filters.max_prompt_tokens}")
    if filters.min_correctness_count is not None and filters.min_correctness_count < 0:
        raise UserError(
            f"{where}: data.filters.min_correctness_count: must be >= 0, got {filters.min_correctness_count}"
        )
