"""Each scored training batch's rewards by group, read at TRL's reward seam (`_calculate_rewards`, TRL 1.15 and
1.16): the spread of rewards inside each group, logged every step as reward_std_within_group, and which groups
have a spread at all (dynamic sampling keeps those).

Why our own metric: TRL's `reward_std` is over the whole batch, and stays high when every group agrees within
itself (some all right, others all wrong). The advantage, so the learning signal, comes from the spread inside a
group.
"""

from __future__ import annotations

from typing import Any

from utils.training._diagnostics import GROUP_STD

# TRL's test for an all-agree group: torch.isclose(std, 0), whose absolute tolerance is 1e-8.
ZERO_STD = 1e-8


def group_std(rewards: Any, group_size: int) -> Any:
    """Sample std of each group's rewards (rows in groups of `group_size`, as TRL lays them out), NaN rewards
    (every reward function returned None) left out; NaN where a group has fewer than two scored rewards."""
    import torch

    grouped = rewards.view(-1, group_size)
    scored = ~torch.isnan(grouped)
    count = scored.sum(dim=1)
    mean = torch.where(scored, grouped, 0.0).sum(dim=1) / count.clamp(min=1)
    squares = torch.where(scored, (grouped - mean.unsqueeze(1)) ** 2, 0.0).sum(dim=1)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    return torch.where(count >= 2, std, torch.nan)


def has_spread(std: Any) -> Any:
    """Groups whose rewards do not all agree (NaN std: not enough scored rewards to teach anything)."""
    return std > ZERO_STD  # NaN compares False


class GroupRewards:
    """Wraps the trainer's `_calculate_rewards`; after each training batch, `std` holds its groups' spreads."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.std: Any = None
        self._calculate = trainer._calculate_rewards

    def calculate(self, *args: Any, **kwargs: Any) -> Any:
        rewards_per_func = self._calculate(*args, **kwargs)
        if self.trainer.model.training:
            self.record(rewards_per_func)
        return rewards_per_func

    def record(self, rewards_per_func: Any) -> None:
        """Total reward per completion as TRL weighs it (gathered from every process, so groups are whole)."""
        import torch

        weights = self.trainer.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        self.std = group_std(total, self.trainer.num_generations)
        scored = self.std[~torch.isnan(self.std)]
        if scored.numel():
            self.trainer._metrics["train"][GROUP_STD].append(scored.mean().item())


def watch_group_rewards(trainer: Any) -> GroupRewards | None:
    """Install the tap; None where the trainer has no such seam (a TRL or Unsloth version that renamed it)."""
    if not callable(getattr(trainer, "_calculate_rewards", None)) or not hasattr(trainer, "_metrics"):
        return None
    groups = GroupRewards(trainer)
    trainer._calculate_rewards = groups.calculate  # on the instance: TRL's class stays untouched
    return groups
