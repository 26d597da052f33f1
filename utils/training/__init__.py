"""One GRPO run: set-up built once, GRPOConfig, the trainer, run folder, callbacks, plots, generation helpers;
and the starting model's pass rates on the training problems (scripts/pass_rate.py).

The callbacks and the CPU generation copy import transformers; they load on first use (PEP 562), so that
`import utils.training` stays light and Unsloth can still be imported before TRL and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from utils.training._config import check_trl_trains_here, grpo_config_kwargs
from utils.training._distributed import end_process_group, is_main_process, world_size
from utils.training._faults import RunFailed
from utils.training._pass_rate import PassRateJob, PassRateRequest, PassRateSummary
from utils.training._plan import format_plan
from utils.training._setup import RunSetup, check_run_paths, cpu_precision, reward_weights, set_up_run
from utils.training._trainer import PreparedRun, TrainOutcome, prepare_training, run_training
from utils.training._vllm_server import bound_requests, check_vllm_server, wait_for_server

if TYPE_CHECKING:
    from utils.training._callbacks import RecordedBase, RewardRecorder, RunMonitor
    from utils.training._cpu_generation import GenerationCopy

_LAZY = {"RecordedBase": "_callbacks", "RewardRecorder": "_callbacks", "RunMonitor": "_callbacks", "GenerationCopy": "_cpu_generation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GenerationCopy",
    "PassRateJob",
    "PassRateRequest",
    "PassRateSummary",
    "PreparedRun",
    "RecordedBase",
    "RewardRecorder",
    "RunFailed",
    "RunMonitor",
    "RunSetup",
    "TrainOutcome",
    "bound_requests",
    "check_run_paths",
    "check_trl_trains_here",
    "check_vllm_server",
    "cpu_precision",
    "end_process_group",
    "format_plan",
    "grpo_config_kwargs",
    "is_main_process",
    "prepare_training",
    "reward_weights",
    "run_training",
    "set_up_run",
    "wait_for_server",
    "world_size",
]
