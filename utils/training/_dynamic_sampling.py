"""DAPO's dynamic sampling ("filter groups"): a step trains only on groups whose rewards disagree, filled up
from further prompts before the update.

Where: TRL's generation+scoring seam, `_generate_and_score_completions` (the same name and contract in TRL 1.15
and 1.16), wrapped on the trainer instance. TRL calls it once per generation batch (per_device_train_batch_size x
steps_per_generation rows) and splits the result into the micro-batches of gradient accumulation
(`_prepare_inputs` buffers them), so filtering here keeps whole groups and hands back exactly the rows TRL
expects: accumulation and `steps_per_generation` need nothing else.

Each extra round generates a full generation batch (DAPO's choice: the same shapes, batched as well as the
first) from prompts drawn at random from the training set, seeded by the run's seed, the step and the round. No
sampler position to save: a resumed run draws the same prompts, and TRL's own dataloader (whose position the
checkpoint restores) is never touched. `oversample` > 1 makes every round larger than the batch trained on (verl's
gen_batch_size over train_batch_size): TRL's prompts plus seeded random ones (round 0), so one round more often
holds enough groups that disagree, for fewer, larger generations (on CPU a round of 16 rows cost 1.5x one of 8).
After `max_extra_batches` rounds the step trains on what it kept, the rest of the batch filled with all-agree
groups, whose advantage is zero (as without dynamic sampling); the metrics say so (dynamic_sampling/cap_hit,
filled_fraction).

Advantages stay as TRL computed them per generation batch: exact for scale_rewards `group` (the default) and
`none`, which centre (and scale) each group on itself.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from utils.errors import UserError
from utils.training._diagnostics import DYNAMIC, KEPT
from utils.training._group_rewards import GroupRewards, has_spread

LEFT_PADDED = {"prompt_ids", "prompt_mask"}  # TRL pads prompts on the left, completions on the right
PAD_ONES = {"tool_mask"}  # TRL pads tool masks with 1


def check_dynamic_sampling(enabled: bool, processes: int, config: Any) -> None:
    """Refuse, in one line before anything loads, the settings dynamic sampling cannot honour yet."""
    if not enabled:
        return
    if processes > 1:  # a group's completions span processes, and all would have to agree on the extra rounds
        raise UserError(f"dynamic_sampling.enabled: works with one training process for now ({processes} were "
                        "launched): launch one, or set dynamic_sampling.enabled: false")
    if getattr(config, "multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
        raise UserError("dynamic_sampling.enabled: needs training.multi_objective_aggregation: sum_then_normalize "
                        "(normalize_then_sum centres advantages on the whole batch, so an all-agree group still "
                        "has one)")


class DynamicSampler:
    """The wrapped `_generate_and_score_completions`; `groups` tells which groups of each scored batch agree."""

    def __init__(self, trainer: Any, groups: GroupRewards, max_extra_batches: int, oversample: float = 1.0) -> None:
        self.trainer = trainer
        self.groups = groups
        self.max_extra_batches = max_extra_batches
        self.oversample = oversample
        self._generate_and_score = trainer._generate_and_score_completions

    def generate_and_score(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        trainer = self.trainer
        if not trainer.model.training:  # evaluation through TRL: unfiltered
            return self._generate_and_score(inputs)
        size = trainer.num_generations
        needed = len(inputs) // size
        # groups generated each round; the epsilon keeps float error from adding one (10 x 1.1 = 11.000000000000002)
        drawn = max(needed, math.ceil(needed * self.oversample - 1e-9))
        outputs, spread = [], []
        self._score(inputs + self.extra_inputs(drawn - needed, 0), drawn, outputs, spread)
        started = time.perf_counter()
        while sum(map(sum, spread)) < needed and len(outputs) <= self.max_extra_batches:
            self._score(self.extra_inputs(drawn, len(outputs)), drawn, outputs, spread)
        seconds = time.perf_counter() - started
        chosen, filled = choose_groups(spread, needed)
        self._log(spread, len(outputs) - 1, seconds, filled / needed)
        if len(outputs) == 1 and drawn == needed:  # the first batch was all signal: TRL's own output, untouched
            return outputs[0]
        rows = [[g * size + i for g in groups for i in range(size)] for groups in chosen]
        return merge_rows(outputs, rows, _pad_id(trainer))

    def _score(self, inputs: list[dict[str, Any]], groups: int, outputs: list, spread: list) -> None:
        """Generate and score one batch; note which of its groups have a spread of rewards."""
        self.groups.std = None
        outputs.append(self._generate_and_score(inputs))
        std = self.groups.std
        if std is None or std.numel() != groups:  # a trainer that scores elsewhere: filtering would guess
            raise RuntimeError("dynamic sampling: the trainer scored this batch without TRL's _calculate_rewards; "
                               "set dynamic_sampling.enabled: false for this run")
        spread.append(has_spread(std).tolist())

    def extra_inputs(self, prompts: int, round_: int) -> list[dict[str, Any]]:
        """`prompts` rows of the training set, each repeated once per generation as TRL's sampler lays them out;
        drawn by (seed, step, round), so a resumed run draws the same ones."""
        trainer = self.trainer
        dataset = trainer.train_dataset
        rng = random.Random(f"{trainer.args.seed}/{trainer.state.global_step}/{round_}")
        n = len(dataset)
        indices = rng.sample(range(n), min(prompts, n)) + rng.choices(range(n), k=max(prompts - n, 0))
        return [dict(row) for row in (dataset[i] for i in indices) for _ in range(trainer.num_generations)]

    def _log(self, spread: list[list[bool]], extra: int, seconds: float, filled: float) -> None:
        metrics = self.trainer._metrics["train"]
        generated = sum(map(len, spread))
        metrics[KEPT].append(sum(map(sum, spread)) / generated)
        metrics[DYNAMIC + "extra_batches"].append(float(extra))
        metrics[DYNAMIC + "extra_seconds"].append(seconds)
        metrics[DYNAMIC + "filled_fraction"].append(filled)  # of the batch trained on: all-agree groups
        metrics[DYNAMIC + "cap_hit"].append(float(filled > 0))


def choose_groups(spread: list[list[bool]], needed: int) -> tuple[list[list[int]], int]:
    """Per scored batch, the groups to train on: groups with a spread first, in the order generated, up to
    `needed`; short of that, all-agree groups fill the rest (first batch first). Returns them and the fill count."""
    chosen: list[list[int]] = [[] for _ in spread]
    count = 0
    for want_spread in (True, False):
        for batch, flags in enumerate(spread):
            for group, flag in enumerate(flags):
                if count < needed and flag == want_spread:
                    chosen[batch].append(group)
                    count += 1
    filled = sum(1 for batch, groups in enumerate(chosen) for g in groups if not spread[batch][g])
    return chosen, filled


def merge_rows(outputs: list[dict[str, Any]], rows: list[list[int]], pad_id: int) -> dict[str, Any]:
    """One batch from chosen rows of several TRL generation batches: each per-row tensor re-padded to the longest
    (prompts on the left, completions and per-token values on the right) and concatenated; num_items_in_batch
    (the loss's token count) recounted over the rows kept."""
    import torch

    merged: dict[str, Any] = {}
    for key, first in outputs[0].items():
        if key == "num_items_in_batch":
            continue
        if not (torch.is_tensor(first) and first.ndim >= 1):  # images and the like: not in a text-only run
            raise RuntimeError(f"dynamic sampling: cannot merge TRL's batch field {key!r}; "
                               "set dynamic_sampling.enabled: false for this run")
        parts = [out[key][torch.tensor(idx, dtype=torch.long, device=first.device)]
                 for out, idx in zip(outputs, rows, strict=True) if idx]
        value = pad_id if key.endswith("_ids") else 1 if key in PAD_ONES else 0
        merged[key] = _cat_padded(parts, left=key in LEFT_PADDED, value=value)
    if "num_items_in_batch" in outputs[0]:
        mask = merged["completion_mask"]
        merged["num_items_in_batch"] = (mask * merged["tool_mask"] if "tool_mask" in merged else mask).sum()
    return merged


def _cat_padded(parts: list[Any], left: bool, value: float) -> Any:
    import torch
    import torch.nn.functional as F

    if parts[0].ndim == 1:
        return torch.cat(parts)
    width = max(p.shape[1] for p in parts)
    lead = [0, 0] * (parts[0].ndim - 2)  # F.pad lists the last dimension first; only dim 1 is padded
    return torch.cat([F.pad(p, [*lead, width - p.shape[1], 0] if left else [*lead, 0, width - p.shape[1]],
                            value=value) for p in parts])


def _pad_id(trainer: Any) -> int:
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)  # a processor holds one
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def use_dynamic_sampling(trainer: Any, groups: GroupRewards | None, max_extra_batches: int,
                         oversample: float = 1.0) -> DynamicSampler:
    """Wrap the trainer's generation+scoring so each step trains on groups that disagree (see the module doc)."""
    check_dynamic_sampling(True, trainer.accelerator.num_processes, trainer.args)
    if groups is None or not callable(getattr(trainer, "_generate_and_score_completions", None)):
        raise UserError(f"dynamic_sampling.enabled: this trainer ({type(trainer).__name__}) has no TRL "
                        "generation+scoring seam to filter at: set dynamic_sampling.enabled: false")
    if not hasattr(trainer.train_dataset, "__len__"):
        raise UserError("dynamic_sampling.enabled: needs a training set read by index, not a streamed one")
    sampler = DynamicSampler(trainer, groups, max_extra_batches, oversample)
    trainer._generate_and_score_completions = sampler.generate_and_score  # on the instance: the class stays TRL's
    return sampler
