"""Recipe sections: typed dataclasses with the defaults a recipe gets when it leaves a key out.

A recipe has sections (model, lora, data, prompt, rewards, training, eval, output). Our own sections are
dataclasses here; `training:` holds TRL GRPOConfig field names and is checked against the installed TRL
(utils.config._validation). Field comments are for maintainers: the recipes carry the user-facing ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


# `choices` metadata limits a string value to a few names.
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
    benchmark: str = "openr1-val"  # the single-benchmark form; `benchmarks` replaces it
    samples: int = 200
    max_new_tokens: int = 1024
    batch_size: int = 16
    # Several benchmarks watched at once: [{name: openr1-val}, {name: gsm8k, samples: 100, max_new_tokens: 512}];
    # an entry's samples / max_new_tokens default to the section's (so a recipe extending this one can still
    # change them all). Each is logged as eval/<name>/accuracy. Checked in utils.config._validation.
    benchmarks: list[dict[str, Any]] | None = None
    best_by: str | None = None  # the benchmark whose accuracy picks best/ (default: the first)

    def watched(self) -> list[dict[str, Any]]:
        """Every benchmark to evaluate, as {name, samples, max_new_tokens} (the single form: one entry)."""
        entries = self.benchmarks or [{"name": self.benchmark}]
        return [{"samples": self.samples, "max_new_tokens": self.max_new_tokens, **entry} for entry in entries]

    @property
    def best_name(self) -> str:
        return self.best_by or self.watched()[0]["name"]


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
