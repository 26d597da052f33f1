"""A few real GRPO steps with plain TRL, shared by the Unsloth tests (CPU and GPU); and the project's trainer on
the smoke recipe with a planted reward, batch by batch (the dynamic-sampling tests, with either backend).

Kept apart from the tests so they can switch to the project's trainer (utils/training.py) in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.repo import ROOT
from utils.config import load_recipe

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
GROUP = 4  # smoke_cpu.yaml: num_generations 4, one prompt per micro-batch

PROMPTS = [f"What is {a} + {b}? Put the answer in \\boxed{{}}." for a, b in zip(range(3, 11), range(5, 13), strict=True)]


def length_reward(completions: list, **_: Any) -> list[float]:
    """Characters in the completion: a random model's samples differ in length, so advantages are not
    all zero and a GRPO step really moves the weights (a correctness reward would be 0 everywhere)."""
    return [float(len(c[0]["content"] if isinstance(c, list) else c)) for c in completions]


def varying_length_reward(prompts: list, completions: list, **_: Any) -> list[float]:
    """Distinct characters per completion / 10: varies within a group, so a tiny random model's GRPO
    step has an advantage to follow (its accuracy is always 0). Named by import path in recipes."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [len(set(t)) / 10.0 for t in texts]


def lora_weights(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().clone() for n, p in model.named_parameters() if "lora_" in n}


def run_grpo_steps(model: Any, tokenizer: Any, output_dir: str, steps: int = 2, **config: Any) -> Any:
    """Run `steps` GRPO steps on a tiny prompt set; returns the trainer (log in trainer.state.log_history).

    Import order matters on the Unsloth path: the caller has already imported unsloth (load_with_unsloth
    does), so `trl` here hands out Unsloth's patched classes where Unsloth patches them.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS])
    settings: dict[str, Any] = {
        "output_dir": output_dir,
        "max_steps": steps,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "num_generations": 4,
        "max_completion_length": 16,
        # Large on purpose: two steps must visibly move a LoRA adapter.
        "learning_rate": 1e-2,
        # No decay: only a real gradient may change the weights (decay alone would move them too).
        "weight_decay": 0.0,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "seed": 0,
        **config,
    }
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=GRPOConfig(**settings),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def tiny_recipe(tiny_model_dir: Path, out: Path, reward: str, *extra: str):
    """The smoke recipe, short: no evaluation, 16-token completions, one planted reward (tests/signal_rewards)."""
    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={out}", "eval.every_steps=0",
                                 "training.max_completion_length=16", "training.save_steps=100", *extra])
    recipe.rewards = {f"tests.signal_rewards.{reward}": 1.0}
    return recipe


def train_watching_batches(recipe, rounds: list[int] | None = None) -> tuple[list[torch.Tensor], list[dict]]:
    """Train; returns the advantages of each batch handed to the update (grouped) and the metrics records.
    `rounds`, with dynamic sampling on, gets the rows of each generation round it asked TRL for."""
    from utils.training import prepare_training

    run = prepare_training(recipe, progress=False)
    filtered = run.trainer._generate_and_score_completions  # dynamic sampling's wrapper (when on)
    if rounds is not None:
        sampler = filtered.__self__
        generate = sampler._generate_and_score
        sampler._generate_and_score = lambda inputs: rounds.append(len(inputs)) or generate(inputs)
    batches: list[torch.Tensor] = []

    def spy(inputs):
        out = filtered(inputs)
        batches.append(out["advantages"].view(-1, GROUP))
        return out

    run.trainer._generate_and_score_completions = spy
    run.train()
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    return batches, [r for r in records if "loss" in r]
