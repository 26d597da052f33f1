"""Training data: sources, schema adapters, filters, decontamination, split + format, cache, exploration.

    prepared = load_training_data(recipe, tokenizer)   # -> PreparedData(.train, .validation, .report)

Modules, one job each: _sources (where rows come from), _readers (reading them), _adapters (schemas),
_filters, _decontaminate, _benchmark_sets (benchmark sets as sources), _split (validation split, subset, prompt
formatting), _pass_rates (the pass-rate file, its key and filter), _curriculum (the train split's order by
difficulty), _cache, _load (the entry points), _prompts (rendering and counting prompts; the messages and formats
are utils.formats'), _explore (explore_data.py), _report, _synthetic (generated problems: dataset: synthetic).
Public here: the entry points and the types they return, the prompt helpers (render_prompts is the one
renderer), explore, generate_problems, parse_columns (evaluate.py's --columns), and the seams other packages and tests use (resolve_source checks a
data.dataset without reading it; benchmark_source, read_benchmark and check_benchmark read benchmark sets
for evaluation and the dry run as decontamination does; code_version; the pass-rate file's key, path and
records, for scripts/pass_rate.py, which writes it, and the dry run, which checks it).
"""

from utils.data._adapters import detect_format, parse_columns
from utils.data._benchmark_sets import benchmark_source
from utils.data._cache import code_version
from utils.data._decontaminate import NgramIndex, normalized_words, resolve_eval_set
from utils.data._explore import Exploration, answer_kind, explore
from utils.data._load import (
    LoadedData,
    check_benchmark,
    load_adapted,
    load_training_data,
    prepare_data,
    read_benchmark,
)
from utils.data._pass_rates import (
    DEFAULT_BAND,
    DEFAULT_K,
    PassRates,
    find_pass_rate_file,
    needs_pass_rates,
    pass_rate_key,
    pass_rate_path,
    problem_key,
    read_pass_rates,
)
from utils.data._prompts import (
    PromptTokenCounter,
    prompt_token_counts,
    render_prompt,
    render_prompts,
    tokens_at_most_bytes,
)
from utils.data._report import DataReport, FilterStep, PreparedData
from utils.data._sources import resolve_source
from utils.data._split import OUTPUT_COLUMNS, split_indices
from utils.data._synthetic import generate_problems

__all__ = [
    "DEFAULT_BAND",
    "DEFAULT_K",
    "OUTPUT_COLUMNS",
    "DataReport",
    "Exploration",
    "FilterStep",
    "LoadedData",
    "NgramIndex",
    "PassRates",
    "PreparedData",
    "PromptTokenCounter",
    "answer_kind",
    "benchmark_source",
    "check_benchmark",
    "code_version",
    "detect_format",
    "explore",
    "find_pass_rate_file",
    "generate_problems",
    "load_adapted",
    "load_training_data",
    "needs_pass_rates",
    "normalized_words",
    "parse_columns",
    "pass_rate_key",
    "pass_rate_path",
    "prepare_data",
    "problem_key",
    "prompt_token_counts",
    "read_benchmark",
    "read_pass_rates",
    "render_prompt",
    "render_prompts",
    "resolve_eval_set",
    "resolve_source",
    "split_indices",
    "tokens_at_most_bytes",
]
