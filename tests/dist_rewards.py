"""A reward for the multi-process tests, named in their recipes by import path (tests.dist_rewards.rank_marker).

Each rank scores its completions with its own rank number, so the logged mean reward tells whether the
metrics cover every rank (0.5 over two ranks, 0.0 if only the main one's were logged). It also records,
per rank, the step, the prompts it scored and its pid in $GRPO_DIST_LOG/rank-N.jsonl, and sleeps
$GRPO_DIST_SLEEP seconds (a run long enough to be stopped mid-way).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def rank_marker(prompts: list, completions: list, trainer_state: Any = None, **kwargs: Any) -> list[float]:
    rank = int(os.environ.get("RANK", "0"))
    log_dir = os.environ.get("GRPO_DIST_LOG")
    if log_dir:
        texts = sorted({p[-1]["content"] if isinstance(p, list) else str(p) for p in prompts})
        step = trainer_state.global_step if trainer_state is not None else None
        with (Path(log_dir) / f"rank-{rank}.jsonl").open("a") as f:
            f.write(json.dumps({"step": step, "pid": os.getpid(), "prompts": texts}) + "\n")
    time.sleep(float(os.environ.get("GRPO_DIST_SLEEP", "0")))
    return [float(rank)] * len(completions)
