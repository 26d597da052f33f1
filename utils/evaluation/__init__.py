"""Evaluation: benchmarks as rows (names and the data folder: utils.benchmarks), batched generation
(transformers, vLLM), metrics, resumable runs, reports."""

from utils.evaluation._accuracy import EvalResult, evaluate_accuracy
from utils.evaluation._benchmarks import LoadedBenchmark, load_benchmark
from utils.evaluation._compare import (
    Evaluated,
    compare,
    flips,
    intersection_notes,
    precision_notes,
    write_comparison,
)
from utils.evaluation._evaluate import (
    EvalRequest,
    check_request,
    eval_dtype,
    evaluate_model,
    load_benchmarks,
    make_generator,
)
from utils.evaluation._generation import Generated, HfGenerator, Sampling
from utils.evaluation._metrics import (
    difference_interval,
    majority_correct,
    paired_difference_interval,
    pass_at_k,
    summarize,
    wilson_interval,
)
from utils.evaluation._models import EvalModel, eval_tokenizer, load_eval_model, resolve_model
from utils.evaluation._report import benchmark_table, write_report
from utils.evaluation._runner import BenchmarkRun, kept_samples, read_samples
from utils.evaluation._vllm import VllmGenerator
from utils.evaluation._watch import WatchedSet, watched_sets

__all__ = [
    "BenchmarkRun",
    "EvalModel",
    "Evaluated",
    "EvalRequest",
    "EvalResult",
    "Generated",
    "HfGenerator",
    "LoadedBenchmark",
    "Sampling",
    "VllmGenerator",
    "WatchedSet",
    "benchmark_table",
    "check_request",
    "compare",
    "difference_interval",
    "eval_dtype",
    "eval_tokenizer",
    "evaluate_accuracy",
    "evaluate_model",
    "flips",
    "intersection_notes",
    "kept_samples",
    "precision_notes",
    "load_benchmark",
    "load_benchmarks",
    "load_eval_model",
    "majority_correct",
    "make_generator",
    "paired_difference_interval",
    "pass_at_k",
    "read_samples",
    "resolve_model",
    "summarize",
    "watched_sets",
    "wilson_interval",
    "write_comparison",
    "write_report",
]
