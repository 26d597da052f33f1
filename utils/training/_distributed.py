"""Several training processes (`accelerate launch`): which one writes the run folder, and how they agree.

What we rely on instead of redoing it:
- accelerate (through transformers' TrainingArguments) starts the process group: gloo on CPU, NCCL on GPUs.
- transformers' Trainer saves model, optimizer and scheduler on the main process only (each rank its own
  RNG state; DeepSpeed each rank its shards) and rotates checkpoints there.
- TRL's GRPOTrainer gathers rewards, lengths and losses across processes before it logs: the metrics the
  main process sees cover every rank. Its sampler gives each rank different prompts.
What we add: the run folder (lock, checks, resolved recipe, metrics, completions, plots, best/) is the main
process's; the others wait for its decision (resume from where, or the error) and follow it; a stop asked of
any rank stops all of them at the same step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from utils.errors import UserError

T = TypeVar("T")


class FollowedMainError(UserError):
    """The main process's user error, on another rank: the main process prints it; this rank exits 2 quietly."""

    quiet = True


def world_size() -> int:
    """Processes in this run, as the launcher (torchrun, accelerate launch) tells them; 1 when not launched."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def _group() -> Any:
    """torch.distributed under a multi-process launch (the group started: start_process_group), else None."""
    if world_size() == 1:
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{world_size()} processes but no process group: call start_process_group first")
    return dist


def main_decides(decide: Callable[[], T]) -> T:
    """Run `decide` on the main process only and hand its result (or its UserError) to every rank.

    The others wait meanwhile: this is how only the main process checks and prepares the run folder.
    """
    dist = _group()
    if dist is None:
        return decide()
    message: list[Any] = [None, None]  # (result, error text)
    if is_main_process():
        try:
            message[0] = decide()
        except UserError as err:
            message[1] = str(err)
            dist.broadcast_object_list(message, src=0)
            raise
    dist.broadcast_object_list(message, src=0)
    if message[1] is not None:
        raise FollowedMainError(message[1])
    return message[0]


def wait_for_all() -> None:
    """Every rank reaches this point before any goes on (after a checkpoint's files are all written)."""
    dist = _group()
    if dist is not None:
        dist.barrier()


def end_process_group() -> None:
    """Close the process group once every rank has finished the run (torch's advice: at the end of main).

    Left to interpreter exit, gloo's worker threads can abort a rank there ("terminate called without an
    active exception", pytorch#190489), and torchrun reports a finished run as failed. Only after a run that
    returned on every rank: after an error, another rank may still be waiting in a collective.
    """
    dist = _group()
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()


def largest_across_ranks(value: int) -> int:
    """The largest of each rank's `value`: a stop signal seen by any rank is seen by all."""
    dist = _group()
    if dist is None:
        return value
    import torch

    tensor = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def backend_for_processes(choice: Any, requested: str, processes: int) -> Any:
    """Unsloth trains in one process: refuse it under a multi-process launch, and make `auto` pick hf there."""
    if processes == 1 or choice.name != "unsloth":
        return choice
    if requested == "unsloth":
        raise UserError(f"model.backend: unsloth trains in one process only, and this launch has {processes}: "
                        "set model.backend: hf (transformers + PEFT) for multi-process training")
    return type(choice)("hf", f"auto: {processes} processes (accelerate launch) and Unsloth trains in one only, "
                              "so transformers + PEFT")


def shards_the_model() -> bool:
    """FSDP or DeepSpeed (set by accelerate launch): no process holds the whole model between steps."""
    return any(os.environ.get(f"ACCELERATE_USE_{name}", "false").lower() in ("1", "true")
               for name in ("FSDP", "DEEPSPEED"))


def check_fsdp_has_gpus(cuda: bool) -> None:
    """FSDP launched on a machine without CUDA: one line instead of accelerate's traceback or a silent DDP run.

    accelerate 1.15 turns FSDP on only over GPU-type process groups (state.py, AcceleratorState: MULTI_GPU,
    MULTI_XPU, ...; a CPU group is MULTI_CPU) and its FSDP plugin asks for the current GPU when
    fsdp_sync_module_states is on (utils/dataclasses.py, "no available devices found").
    """
    if not cuda and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true"):
        raise UserError("accelerate launch with FSDP (recipes/accelerate/fsdp.yaml) needs CUDA GPUs: accelerate "
                        "1.15 shards only over GPU process groups (on CPU it would train as plain DDP); here use "
                        "recipes/accelerate/ddp.yaml, or zero2.yaml where DeepSpeed is installed")


def describe_batch(config: Any, processes: int) -> str:
    """The batch of one optimizer step across every rank, in prompts and generations, for the plan."""
    completions = config.per_device_train_batch_size * config.gradient_accumulation_steps * processes
    generations = config.num_generations
    return (f"{processes} process{'es' if processes > 1 else ''}; per optimizer step {completions // generations} "
            f"prompts x {generations} generations = {completions} completions across ranks "
            f"({config.per_device_train_batch_size} per process x {config.gradient_accumulation_steps} accumulation"
            f" x {processes})")



def start_process_group(config: Any) -> None:
    """Under a multi-process launch, have accelerate start the process group now (TrainingArguments does it
    on first use of its device), before the ranks first talk to each other."""
    if world_size() > 1:
        _ = config.device
