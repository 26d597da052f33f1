"""recipes/accelerate/*.yaml as `accelerate launch --config_file` reads them, without launching anything.

Each file goes through accelerate's own code: its config loader (accelerate.commands.config: unknown keys
are refused there), the launcher's argument checks, and the environment the launcher hands each process
(a misspelt fsdp_/deepspeed key is silently dropped on the way, so the test reads what arrives). The
DeepSpeed configs then become the DeepSpeed config accelerate builds (DeepSpeedPlugin), with its "auto"
batch values filled as transformers' Trainer fills them, and DeepSpeed's own config class validates it
where DeepSpeed is installed (requirements-deepspeed.txt).
"""

from __future__ import annotations

import argparse
import importlib.util

import pytest
from accelerate.commands.config import load_config_from_file
from accelerate.utils import DistributedType

from tests.repo import ROOT

CONFIGS = ROOT / "recipes" / "accelerate"
NO_DEEPSPEED = importlib.util.find_spec("deepspeed") is None


def launch_env(name: str, *flags: str) -> tuple[argparse.Namespace, dict[str, str]]:
    """The launcher's arguments and the environment it gives each process for `--config_file name flags`."""
    # accelerate's private steps of `accelerate launch` (launch_command), stopped before anything starts:
    # the public loader alone would not show how the file's fields reach the processes.
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    argv = ["--config_file", str(CONFIGS / name), *flags, "scripts/grpo_train.py"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    if not args.use_deepspeed:
        return args, prepare_multi_gpu_env(args)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
    return args, prepare_deepspeed_cmd_env(args)[1]


def test_every_config_loads_through_accelerates_loader():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == ["ddp.yaml", "fsdp.yaml", "multi_node.yaml", "zero2.yaml", "zero3.yaml"]
    for name in names:
        config = load_config_from_file(str(CONFIGS / name))
        assert config.compute_environment.value == "LOCAL_MACHINE" and config.use_cpu is False, name
        assert config.mixed_precision == "no", f"{name}: precision is the recipe's (GRPOConfig bf16/fp16)"


def test_ddp_is_data_parallel_on_one_machine():
    args, env = launch_env("ddp.yaml", "--num_processes", "4")
    assert args.multi_gpu and not (args.use_fsdp or args.use_deepspeed)
    assert (args.num_machines, args.nproc_per_node) == (1, "4")  # --num_processes overrides the file's 8
    assert "ACCELERATE_USE_FSDP" not in env and "ACCELERATE_USE_DEEPSPEED" not in env


def test_fsdp_shards_everything_and_saves_checkpoints_loadable_without_fsdp(monkeypatch):
    assert load_config_from_file(str(CONFIGS / "fsdp.yaml")).distributed_type == DistributedType.FSDP
    args, env = launch_env("fsdp.yaml")
    assert args.use_fsdp and env["ACCELERATE_USE_FSDP"] == "true"
    assert env["FSDP_VERSION"] == "1" and env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"  # one consolidated state dict: merge_lora, evaluate
    assert env["FSDP_USE_ORIG_PARAMS"] == "true"  # LoRA: frozen and trainable weights in one flat shard
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"

    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import ShardingStrategy, StateDictType

    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    # rank 0 loads the weights and sends them to the others (what a 7B model needs); building the plugin
    # with this asks for the current GPU, so here (no GPU) the plugin is built without it
    assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == env["FSDP_SYNC_MODULE_STATES"] == "true"
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    plugin = FullyShardedDataParallelPlugin()  # what each process builds from that environment
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.sharding_strategy == ShardingStrategy.FULL_SHARD and plugin.use_orig_params
    assert not plugin.activation_checkpointing  # the recipe's gradient checkpointing does it


def deepspeed_config(name: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The DeepSpeed config accelerate builds in each process launched with recipes/accelerate/name."""
    from accelerate.utils import DeepSpeedPlugin

    for key, value in launch_env(name)[1].items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    return DeepSpeedPlugin().deepspeed_config


@pytest.mark.parametrize(("name", "stage"), [("zero2.yaml", 2), ("zero3.yaml", 3)])
def test_deepspeed_configs_say_their_zero_stage(name, stage, monkeypatch):
    assert load_config_from_file(str(CONFIGS / name)).distributed_type == DistributedType.DEEPSPEED
    zero = deepspeed_config(name, monkeypatch)["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    # ZeRO-3 checkpoints hold a gathered 16-bit model, loadable without DeepSpeed (merge_lora, evaluate)
    assert zero["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)


@pytest.mark.skipif(NO_DEEPSPEED, reason="deepspeed is not installed (make setup-deepspeed); "
                                         "accelerate's side of these configs is checked above")
@pytest.mark.parametrize("name", ["zero2.yaml", "zero3.yaml"])
def test_deepspeed_accepts_the_config_trainer_and_accelerate_build(name, monkeypatch, tmp_path):
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    config = HfTrainerDeepSpeedConfig(deepspeed_config(name, monkeypatch))
    arguments = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4,
                                  gradient_accumulation_steps=2, use_cpu=True)
    config.trainer_config_process(arguments)  # the Trainer fills accelerate's "auto" batch values
    validated = DeepSpeedConfig(config.config)  # DeepSpeed's own checks (stage, batch arithmetic, keys)
    assert validated.zero_optimization_stage == int(name[4])
    assert (validated.train_micro_batch_size_per_gpu, validated.gradient_accumulation_steps) == (4, 2)


def test_multi_node_names_the_first_machine_and_splits_processes_over_two():
    config = load_config_from_file(str(CONFIGS / "multi_node.yaml"))
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert (config.num_machines, config.machine_rank, config.main_process_port) == (2, 0, 29500)
    assert config.main_process_ip == "10.0.0.1"
    changes = [line for line in (CONFIGS / "multi_node.yaml").read_text().splitlines()
               if not line.startswith("#") and "# CHANGE" in line]
    assert len(changes) == 4  # the README's "four lines to change"

    args, _ = launch_env("multi_node.yaml", "--machine_rank", "1")  # the second machine's command
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", 1, "8")
    # accelerate 1.15 drops the file's same_network (its flag defaults to False, not None) and hands torchrun
    # the address as a rendezvous endpoint: the first machine's address and port, either way
    assert args.rdzv_endpoint == "10.0.0.1:29500"
