"""A readable plan of what a training run would do, printed by `grpo_train.py --dry-run`."""

from __future__ import annotations

from utils.config import DataSection
from utils.training._config import differences_from_trl
from utils.training._distributed import describe_batch
from utils.training._setup import TRANSFORMERS, RunSetup


def _reward_line(name: str, spec: object) -> str:
    if isinstance(spec, dict):
        params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "weight")
        return f"{name} x {spec['weight']}" + (f" ({params})" if params else "")
    return f"{name} x {spec}"


def _learning_signal_lines(d: DataSection) -> list[str]:
    """The pass-rate filter and the curriculum, when the recipe has them (their file: in the Data line)."""
    lines = []
    if d.filters.pass_rate is not None:
        low, high = d.filters.pass_rate
        lines.append(f"           pass-rate filter: train problems with {low:g} < p < {high:g} (the starting model's)")
    c = d.curriculum
    if c.by != "none":
        by = f"source ({', '.join(c.sources)})" if c.by == "source" else c.by.replace("_", " ")
        lines.append(f"Curriculum by {by}, {c.order.replace('_', ' ')}; TRL's shuffling off (shuffle_dataset: false)")
    return lines


def machine_line(setup: RunSetup) -> str:
    """The machine and, on a CPU, the precision chosen for it: `CPU AVX2, no native bf16: training in fp32,
    sampling from an fp32 copy` (the choice itself: utils.training._setup.cpu_precision)."""
    hw, config = setup.hardware, setup.config
    if hw.cuda:
        return hw.describe()
    training = "training in bf16 autocast" if config.bf16 else "training in fp32"
    if setup.cpu_generation_copy:
        sampling = f"sampling from {'a bf16' if setup.cpu_generation_copy == 'bf16' else 'an fp32'} copy"
    elif setup.generation == TRANSFORMERS:
        sampling = "sampling from the fp32 policy"  # CPU weights load in fp32 (utils.models.torch_dtype)
    else:
        sampling = f"sampling through {setup.generation}"
    return f"{hw.describe()}: {training}, {sampling}"


def format_plan(setup: RunSetup) -> str:
    """What the run will do, as `grpo_train.py` prints it before training (and `--dry-run` alone)."""
    recipe, hw, backend, config = setup.recipe, setup.hardware, setup.backend, setup.config
    m, d, lora = recipe.model, recipe.data, recipe.lora
    lines = [
        f"Recipe     {recipe.source or '(in memory)'}",
        f"Machine    {machine_line(setup)}",
        f"Model      {m.name}" + (f" @ {m.revision}" if m.revision else ""),
        f"Backend    {backend.name}: {backend.reason}",
        f"           4-bit: {'yes' if m.load_in_4bit else 'no'}; generation: {setup.generation}"
        + f"; max_seq_length {m.max_seq_length}",
        "LoRA       "
        + (f"r={lora.r} alpha={lora.alpha} dropout={lora.dropout} on {lora.target_modules}" if lora.enabled else "off (full fine-tuning)"),
        f"Processes  {describe_batch(config, setup.processes)}",
        f"Data       {setup.data_source}; format {d.format}",
        f"           subset: {d.subset if d.subset else 'all rows'}; validation: {d.validation}; seed {d.seed}",
        *_learning_signal_lines(d),
        f"Prompt     {recipe.prompt.format}",
        "Rewards    " + ", ".join(_reward_line(n, s) for n, s in recipe.rewards.items())
        + ("; a reward that fails scores None (rewards_on_error: skip)" if recipe.rewards_on_error == "skip" else ""),
        f"Eval       every {recipe.eval.every_steps} steps on "
        + ", ".join(f"{w['name']} ({w['samples']} problems)" for w in recipe.eval.watched())
        + f"; best/ by {recipe.eval.best_name}"
        if recipe.eval.every_steps
        else "Eval       off during training",
    ]
    if recipe.dynamic_sampling.enabled:
        cap, oversample = recipe.dynamic_sampling.max_extra_batches, recipe.dynamic_sampling.oversample
        lines.append("Sampling   dynamic: groups whose rewards all agree are dropped and the batch refilled, up to "
                     f"{cap} extra generation batch{'' if cap == 1 else 'es'} a step"
                     + (f"; each generates {oversample:g}x the prompts trained on" if oversample > 1 else ""))
    lines += [("Adjusted   " if i == 0 else "           ") + line for i, line in enumerate(setup.adjustments)]
    lines.append("GRPOConfig (values that differ from TRL's defaults on this machine)")
    diff = differences_from_trl(config, hw)
    width = max((len(k) for k in diff), default=0)
    for key, (ours, default) in sorted(diff.items()):
        lines.append(f"  {key:<{width}}  {ours!r}   (TRL: {default!r})")
    lines.append(f"Output     {recipe.run_dir}/")
    return "\n".join(lines)
