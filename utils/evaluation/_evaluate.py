"""evaluate.py's job: MODEL + benchmark names -> OUT/ with per-sample JSONL, summaries and report.md.

Every input is checked (model path, adapter base, benchmark names and files) before any model is loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.benchmarks import OPENR1_VAL
from utils.errors import UserError
from utils.evaluation._benchmarks import LoadedBenchmark, load_benchmark
from utils.evaluation._generation import HfGenerator, Sampling
from utils.evaluation._models import EvalModel, eval_tokenizer, load_eval_model
from utils.evaluation._report import write_report
from utils.evaluation._runner import BenchmarkRun, discard_samples
from utils.evaluation._vllm import VllmGenerator
from utils.formats import DEFAULT_FORMAT, get_format
from utils.models import Hardware, detect_hardware
from utils.runs import FolderLock

BACKENDS = ("auto", "hf", "vllm")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class EvalRequest:
    """What a user asked evaluate.py for (all but the model already resolved)."""

    benchmarks: list[str]
    samples: int = 1
    temperature: float = 0.6  # used when samples > 1 (the usual setting for reasoning models' pass@k)
    top_p: float = 0.95
    seed: int = 0
    limit: int | None = None
    max_new_tokens: int | None = None  # None: each benchmark's own budget
    prompt_format: str | None = None  # None: the run's recipe, else the default format
    data_dir: Path | None = None  # local benchmark copies (utils.benchmarks.find_data_dir); None: the hub
    columns: dict[str, str] = field(default_factory=dict)  # role -> column over what is detected (--columns)
    batch_size: int = 64  # SmolLM2 on 2 CPU cores, 64 GSM8K problems: 118 s at 16, 88 s at 32, 77 s at 64
    dtype: str = "auto"  # auto: bf16 on a GPU or a CPU with native bf16, else fp32; or float32 / bfloat16
    backend: str = "auto"
    force: bool = False
    progress: bool = True


def check_request(request: EvalRequest) -> None:
    if request.samples < 1:
        raise UserError(f"--samples: must be at least 1, got {request.samples}")
    if request.limit is not None and request.limit < 1:
        raise UserError(f"--limit: must be at least 1, got {request.limit}")
    if request.batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {request.batch_size}")
    if request.prompt_format is not None:
        get_format(request.prompt_format, key="--prompt-format")
    if request.dtype not in DTYPES:
        raise UserError(f"--dtype: {request.dtype!r} is not one of {', '.join(DTYPES)}")
    if request.backend not in BACKENDS:
        raise UserError(f"--backend: {request.backend!r} is not one of {', '.join(BACKENDS)}")
    if request.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UserError("--backend vllm: vLLM is not installed here (make setup-vllm builds .venv-vllm with its CPU "
                        "build; make setup-gpu on a CUDA machine)")


def load_benchmarks(spec: EvalModel, request: EvalRequest) -> list[LoadedBenchmark]:
    """Every benchmark's rows, in the run's prompt format unless --prompt-format says otherwise."""
    recipe = spec.recipe
    tokenizer = None
    if recipe and recipe.data.filters.max_prompt_tokens and OPENR1_VAL in request.benchmarks:
        tokenizer = eval_tokenizer(spec)  # the run's validation split depends on its prompt-token filter
    prompt_format = request.prompt_format or (recipe.prompt.format if recipe else DEFAULT_FORMAT)
    system = recipe.prompt.system if recipe and not request.prompt_format else None
    loaded = []
    for name in dict.fromkeys(request.benchmarks):
        bench = load_benchmark(name, prompt_format, system, request.data_dir, recipe, tokenizer, request.limit,
                               request.columns)
        if request.max_new_tokens:
            bench.max_new_tokens = request.max_new_tokens
        loaded.append(bench)
    return loaded


def sampling_for(request: EvalRequest, max_new_tokens: int) -> Sampling:
    if request.samples == 1:
        return Sampling(max_new_tokens, seed=request.seed)
    return Sampling(max_new_tokens, do_sample=True, temperature=request.temperature, top_p=request.top_p,
                    seed=request.seed)


def make_generator(spec: EvalModel, request: EvalRequest) -> Any:
    """The generation backend: vLLM where installed (auto) or asked for, else transformers."""
    use_vllm = request.backend == "vllm" or (request.backend == "auto" and importlib.util.find_spec("vllm"))
    if use_vllm:
        return VllmGenerator.from_spec(spec)
    model, tokenizer = load_eval_model(spec, eval_dtype(request.dtype))
    return HfGenerator(model, tokenizer, request.batch_size)


def eval_dtype(choice: str, hw: Hardware | None = None) -> str:
    """The weights' dtype for transformers generation. `auto` is bf16 where the hardware computes it natively: a
    GPU (as training does), or a CPU with bf16 instructions (training's decision: `hw.cpu.bf16`, which
    GRPO_MATH_CPU_BF16 forces), where it is about 1.6x faster than fp32 (SmolLM2, 64 GSM8K problems at batch
    64: 48 s vs 77 s) and matches what vLLM computes. Greedy text can differ from fp32 in places;
    `--dtype float32` reproduces fp32 results exactly."""
    if choice != "auto":
        return choice
    hw = hw or detect_hardware()
    if hw.cuda:
        return "auto"  # utils.models.torch_dtype: bf16, or fp16 on cards without bf16
    return "bfloat16" if hw.cpu.bf16 else "float32"


def evaluate_model(spec: EvalModel, request: EvalRequest, out_dir: Path, generator: Any = None,
                   benchmarks: list[LoadedBenchmark] | None = None) -> dict[str, Any]:
    """Evaluate `spec` on every requested benchmark into `out_dir`; returns the folder's summary.

    One evaluation at a time holds `out_dir` (a second would append the same samples again). --force discards
    every requested benchmark's samples first, so a stopped run continues without it."""
    check_request(request)
    with FolderLock(Path(out_dir), "an evaluation", "or choose another --out"):
        benchmarks = benchmarks if benchmarks is not None else load_benchmarks(spec, request)
        if request.force:
            for bench in benchmarks:
                discard_samples(Path(out_dir) / bench.name)
        generator = generator or make_generator(spec, request)
        for bench in benchmarks:
            BenchmarkRun(generator, bench, out_dir, sampling_for(request, bench.max_new_tokens), request.samples,
                         spec.label, progress=request.progress).run()
        return write_report(out_dir, spec.label)
