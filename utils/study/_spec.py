"""The study file: stages (a recipe + `--set` overrides each), benchmarks, starting models and seeds, read with
yaml.safe_load and checked key by key; every mistake is one UserError naming the file and the key."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.benchmarks import KNOWN, OPENR1_VAL, canonical_name, unknown_benchmark
from utils.config import parse_override
from utils.errors import UserError, first_line

CONTINUE = ("adapter", "merged")  # how a stage starts from the one before: its adapter trained on, or merged first
PREVIOUS, START = "previous", "start"  # a stage's `from:`: the stage before it (default), or the starting model
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")  # names become folder names
TOP_KEYS = ("name", "output_dir", "models", "seeds", "continue", "start_task", "data_dir", "eval", "stages",
            "benchmarks")
STAGE_KEYS = ("name", "recipe", "set", "task", "continue", "from")
EVAL_KEYS = ("samples", "max_new_tokens", "limit", "prompt_format", "batch_size", "dtype", "backend", "seed")
BENCH_KEYS = ("name", "split_of", "file", *EVAL_KEYS[:4])


@dataclass
class EvalDefaults:
    samples: int = 1  # 1: greedy (flips and paired intervals need it); K: pass@k, maj@k
    max_new_tokens: int | None = None  # None: the benchmark's own budget
    limit: int | None = None  # first N problems of every benchmark
    prompt_format: str | None = None  # None: stage 1's recipe's format
    batch_size: int = 64
    dtype: str = "auto"
    backend: str = "hf"
    seed: int = 0


@dataclass
class StudyBenchmark:
    name: str  # the column and the folder name
    split_of: str | None = None  # the validation split of this stage's recipe (held out from its training)
    file: str | None = None  # a .jsonl/.json/.parquet file or folder (relative to where you run from)
    samples: int | None = None
    max_new_tokens: int | None = None
    limit: int | None = None
    prompt_format: str | None = None

    @property
    def source(self) -> str:
        """What load_benchmark reads: a registry name, a file, or openr1-val (a stage's validation split)."""
        return OPENR1_VAL if self.split_of else (self.file or self.name)


@dataclass
class StudyStage:
    name: str
    recipe: Path
    overrides: list[str] = field(default_factory=list)
    task: str | None = None  # the benchmark measuring what this stage teaches (backward transfer)
    continue_as: str = "adapter"
    start: str = PREVIOUS  # previous | start | the name of an earlier stage


@dataclass
class Study:
    path: Path
    name: str
    output_dir: Path
    stages: list[StudyStage]
    benchmarks: list[StudyBenchmark]
    models: list[str] = field(default_factory=list)  # empty: stage 1's recipe's model.name
    seeds: list[int] = field(default_factory=list)  # empty: each recipe's own training.seed
    start_task: str | None = None  # the benchmark the starting model was trained for (its earlier stage)
    data_dir: str | None = None
    eval: EvalDefaults = field(default_factory=EvalDefaults)

    @property
    def folder(self) -> Path:
        return self.output_dir / self.name

    def to_dict(self) -> dict[str, Any]:
        """The study as resolved (paths absolute, defaults filled in): what study.resolved.yaml holds."""
        data = asdict(self)
        data["path"], data["output_dir"] = str(self.path), str(self.output_dir)
        for stage in data["stages"]:
            stage["recipe"] = str(stage["recipe"])
        return data

    def stage_named(self, name: str) -> StudyStage:
        return next(s for s in self.stages if s.name == name)


def read_study(path: str | Path) -> Study:
    """Read and check a study file: its structure, names and cross-references (recipes are checked later)."""
    path = Path(path)
    raw = _read_mapping(path)
    where = str(path)
    _known_keys(raw, TOP_KEYS, where, "")
    name = _name(raw.get("name", path.stem), where, "name")
    stages = _stages(raw.get("stages"), path)
    names = [s.name for s in stages]
    benchmarks = _benchmarks(raw.get("benchmarks"), path, names)
    bench_names = [b.name for b in benchmarks]
    for i, stage in enumerate(stages):
        if stage.task is not None and stage.task not in bench_names:
            raise UserError(f"{where}: stages[{i}].task: '{stage.task}' is not one of the benchmarks "
                            f"({', '.join(bench_names)})")
    start_task = _optional_str(raw, "start_task", where)
    if start_task is not None and start_task not in bench_names:
        raise UserError(f"{where}: start_task: '{start_task}' is not one of the benchmarks ({', '.join(bench_names)})")
    default_continue = _choice(raw.get("continue", "adapter"), CONTINUE, where, "continue")
    for stage, entry in zip(stages, raw["stages"], strict=True):
        stage.continue_as = _choice(entry.get("continue", default_continue), CONTINUE, where, f"stage {stage.name}: continue")
    return Study(path=path, name=name, output_dir=Path(_str(raw.get("output_dir", "checkpoints/studies"), where,
                                                               "output_dir")),
                 stages=stages, benchmarks=benchmarks, models=_str_list(raw.get("models"), where, "models"),
                 seeds=_int_list(raw.get("seeds"), where, "seeds"), start_task=start_task,
                 data_dir=_optional_str(raw, "data_dir", where), eval=_eval_defaults(raw.get("eval"), where))


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: study file not found" if not path.exists() else f"{path}: not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{line}: {getattr(err, 'problem', None) or first_line(err)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a study file is a mapping (name, stages, benchmarks, ...), got "
                        f"{type(data).__name__}")
    return data


def _known_keys(raw: dict[str, Any], keys: tuple[str, ...], where: str, prefix: str) -> None:
    for key in raw:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(keys)}"
            raise UserError(f"{where}: {prefix}{key}: unknown key ({hint})")


def _str(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {key}: expected a non-empty string, got {value!r}")
    return value


def _optional_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    return None if raw.get(key) is None else _str(raw[key], where, key)


def _name(value: Any, where: str, key: str) -> str:
    text = _str(str(value) if isinstance(value, int) else value, where, key)
    if not _NAME.match(text):
        raise UserError(f"{where}: {key}: {text!r} must be a plain name (letters, digits, '.', '_', '-'): "
                        "it names a folder")
    return text


def _choice(value: Any, choices: tuple[str, ...], where: str, key: str) -> str:
    if value not in choices:
        raise UserError(f"{where}: {key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _str_list(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: {key}: expected a list of strings, got {value!r}")
    return [_str(v, where, key) for v in items]


def _int_list(value: Any, where: str, key: str) -> list[int]:
    if value is None:
        return []
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in items):
        raise UserError(f"{where}: {key}: expected a list of integers, got {value!r}")
    if len(set(items)) != len(items):
        raise UserError(f"{where}: {key}: {value!r} repeats a seed")
    return list(items)


def _positive(value: Any, where: str, key: str, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{where}: {key}: expected a whole number of at least 1, got {value!r}")
    return value


def _eval_defaults(raw: Any, where: str) -> EvalDefaults:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{where}: eval: expected a mapping ({', '.join(EVAL_KEYS)}), got {raw!r}")
    _known_keys(raw, EVAL_KEYS, where, "eval.")
    out = EvalDefaults(**{k: v for k, v in raw.items() if v is not None})
    for key in ("samples", "batch_size"):
        _positive(getattr(out, key), where, f"eval.{key}", optional=False)
    for key in ("max_new_tokens", "limit"):
        _positive(getattr(out, key), where, f"eval.{key}")
    _check_format(out.prompt_format, where, "eval.prompt_format")
    _choice(out.dtype, ("auto", "float32", "bfloat16"), where, "eval.dtype")
    _choice(out.backend, ("auto", "hf", "vllm"), where, "eval.backend")
    return out


def _check_format(name: str | None, where: str, key: str) -> None:
    if name is not None:
        from utils.formats import get_format

        get_format(name, key=f"{where}: {key}")


def _stages(raw: Any, path: Path) -> list[StudyStage]:
    where = str(path)
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: stages: expected a list of stages ({{name, recipe, set, task}}), got {raw!r}")
    stages: list[StudyStage] = []
    for i, entry in enumerate(raw):
        key = f"stages[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: {key}: expected a mapping (name, recipe, set, task), got {entry!r}")
        _known_keys(entry, STAGE_KEYS, where, f"{key}.")
        name = _name(entry.get("name", f"stage{i + 1}"), where, f"{key}.name")
        if any(s.name == name for s in stages):
            raise UserError(f"{where}: {key}.name: '{name}' names two stages")
        recipe = Path(_str(entry.get("recipe"), where, f"{key}.recipe"))
        recipe = recipe if recipe.is_absolute() else Path(os.path.normpath(path.parent / recipe))
        if not recipe.is_file():
            raise UserError(f"{where}: {key}.recipe: {recipe}: recipe file not found")
        overrides = _str_list(entry.get("set"), where, f"{key}.set")
        for text in overrides:
            parse_override(text)  # a malformed override: one line now
        start = _str(entry.get("from", PREVIOUS), where, f"{key}.from")
        if start not in (PREVIOUS, START) and start not in [s.name for s in stages]:
            later = start == name or any(e.get("name") == start for e in raw[i:] if isinstance(e, dict))
            why = ("a cycle: stages run in order, so a stage starts from one before it" if later else
                   "no such stage")
            raise UserError(f"{where}: {key}.from: '{start}': {why} (previous, start, or an earlier stage's name)")
        stages.append(StudyStage(name, recipe, overrides, _optional_str(entry, "task", where), start=start))
    return stages


def _benchmarks(raw: Any, path: Path, stage_names: list[str]) -> list[StudyBenchmark]:
    where = str(path)
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: benchmarks: expected a list (gsm8k, or {{name, split_of | file, samples, "
                        f"max_new_tokens, limit, prompt_format}}), got {raw!r}")
    out: list[StudyBenchmark] = []
    for i, entry in enumerate(raw):
        key = f"benchmarks[{i}]"
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict):
            raise UserError(f"{where}: {key}: expected a name or a mapping, got {entry!r}")
        _known_keys(entry, BENCH_KEYS, where, f"{key}.")
        bench = StudyBenchmark(name=_name(entry.get("name"), where, f"{key}.name"),
                               split_of=_optional_str(entry, "split_of", where),
                               file=_optional_str(entry, "file", where),
                               samples=_positive(entry.get("samples"), where, f"{key}.samples"),
                               max_new_tokens=_positive(entry.get("max_new_tokens"), where, f"{key}.max_new_tokens"),
                               limit=_positive(entry.get("limit"), where, f"{key}.limit"),
                               prompt_format=_optional_str(entry, "prompt_format", where))
        _check_source(bench, path, stage_names, f"{key}")
        _check_format(bench.prompt_format, where, f"{key}.prompt_format")
        if any(b.name == bench.name for b in out):
            raise UserError(f"{where}: {key}.name: '{bench.name}' names two benchmarks")
        out.append(bench)
    return out


def _check_source(bench: StudyBenchmark, path: Path, stage_names: list[str], key: str) -> None:
    """A benchmark is a registry name, a stage's validation split or a file; which one must be unambiguous."""
    where = str(path)
    if bench.split_of and bench.file:
        raise UserError(f"{where}: {key}: give split_of or file, not both")
    if bench.split_of:
        if bench.split_of not in stage_names:
            raise UserError(f"{where}: {key}.split_of: '{bench.split_of}' is not a stage ({', '.join(stage_names)})")
        if bench.prompt_format:
            raise UserError(f"{where}: {key}.prompt_format: a stage's validation split is asked in that stage's "
                            "prompt format (leave prompt_format out)")
        return
    if bench.file:
        if not Path(bench.file).expanduser().exists():  # relative to where you run from, as in a recipe
            raise UserError(f"{where}: {key}.file: {bench.file}: no such file or folder")
        return
    name = canonical_name(bench.name)
    if name == OPENR1_VAL:
        raise UserError(f"{where}: {key}: '{OPENR1_VAL}' needs a recipe here: write split_of: STAGE (the stage "
                        "whose validation split it is)")
    if name not in KNOWN:
        raise unknown_benchmark(bench.name, f"{where}: {key}.name", tuple(k for k in KNOWN if k != OPENR1_VAL))
