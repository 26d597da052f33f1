"""Load model + tokenizer through a backend: `unsloth` (CUDA, 4-bit, vLLM) or `hf` (transformers + PEFT)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import ModelSection, Recipe
from utils.errors import UserError, first_line
from utils.models._adapters import adapter_base, record_base, recorded_name
from utils.models._hardware import Hardware, detect_hardware
from utils.models._unsloth import set_vllm_standby


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "unsloth" | "hf"
    reason: str


def resolve_backend(requested: str, hw: Hardware) -> BackendChoice:
    """Pick the backend a recipe's `model.backend` asks for, or for `auto` the best one this machine can run.

    The one place the backend is decided. An unknown name resolves like `auto`: recipe validation reports it.
    """
    if requested == "hf":
        return BackendChoice("hf", "the recipe asks for model.backend: hf")
    if requested == "unsloth":
        if not hw.unsloth_installed:
            raise UserError(
                "model.backend: unsloth, but Unsloth is not installed here "
                "(run `make setup-gpu` on a CUDA machine, or set model.backend: auto)"
            )
        where = hw.gpu_name if hw.cuda else "CPU (no CUDA GPU: Unsloth trains slowly on CPU)"
        return BackendChoice("unsloth", f"the recipe asks for model.backend: unsloth, on {where}")
    if not hw.cuda:
        return BackendChoice(
            "hf",
            "auto: no CUDA GPU on this machine, so transformers + PEFT "
            "(Unsloth's 4-bit kernels and vLLM generation need a CUDA GPU)",
        )
    if not hw.unsloth_installed:
        return BackendChoice("hf", f"auto: CUDA GPU {hw.gpu_name} found, but Unsloth is not installed (make setup-gpu)")
    return BackendChoice("unsloth", f"auto: CUDA GPU {hw.gpu_name} found and Unsloth is installed")


def import_backend(backend: BackendChoice, vllm_standby: bool = False) -> None:
    """Import the backend's patching library first: Unsloth rewrites TRL's trainers on import, and a
    `trl.GRPOTrainer` taken before that keeps TRL's class without the vLLM wiring. `vllm_standby`
    (model.vllm_standby): Unsloth's standby switch, which it reads on import, is set before."""
    if backend.name == "unsloth":
        set_vllm_standby(vllm_standby)
        import unsloth  # noqa: F401


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    backend: BackendChoice
    base_name: str  # the base checkpoint (differs from model.name when starting from an adapter)
    adapter_from: str | None  # the adapter folder training continues, if any


def holds_weights(folder: Path) -> bool:
    """Whether `folder` holds a model (config.json) or a LoRA adapter (adapter_config.json)."""
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def local_model_config(name: str) -> dict[str, Any] | None:
    """The config.json of a local model folder (an adapter folder's: its base's), read without loading the
    model; None for a hub id or a folder without one. A multimodal config's text part where it has one."""
    base = adapter_base(name) or name
    path = Path(base).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"model.name: {path}: unreadable model config ({err})") from None
    return config.get("text_config", config)


def check_model_source(name: str) -> None:
    """Fail fast where `model.name` (or the base an adapter folder names) is a path that does not exist,
    instead of a hub lookup error after seconds; an adapter folder's own config must name its base."""
    base = adapter_base(name)
    for path, what in ((name, "model.name"), (base, f"model.name: {name}: the adapter's base model")):
        if path is None:
            continue
        first = Path(path).parts[0] if Path(path).parts else path
        looks_local = path.startswith((".", "/", "~")) or Path(first).is_dir()
        if looks_local and not Path(path).expanduser().exists():
            raise UserError(f"{what}: {path}: no such folder (and not a hub id of the form owner/name)")


# Short precision names (merge_lora.py --dtype, the CPU sampling copy) -> torch's dtype names.
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def torch_dtype(choice: str, hw: Hardware) -> Any:
    import torch

    if choice != "auto":
        return getattr(torch, choice)
    if not hw.cuda:
        return torch.float32  # weights in fp32; training autocasts to bf16 where the CPU computes it natively
    return torch.bfloat16 if hw.bf16 else torch.float16


def load_tokenizer(name: str, model: ModelSection) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, trust_remote_code=model.trust_remote_code, revision=model.revision
        )
    except OSError as err:
        raise UserError(f"model.name: {name}: cannot load a tokenizer ({first_line(err)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batched generation needs a pad token
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"model.name: {name}: the tokenizer has no chat template (use an instruct/chat checkpoint)")
    return tokenizer


def _load_hf(recipe: Recipe, hw: Hardware, backend: BackendChoice, base: str | None) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    m = recipe.model
    adapter = m.name if adapter_base(m.name) else None
    if base is None:
        check_model_source(m.name)
    base = base or adapter_base(m.name) or m.name
    # an adapter folder saved by us carries the tokenizer (chat template included); else the base's
    has_own_tokenizer = adapter is not None and (Path(adapter) / "tokenizer_config.json").exists()
    tokenizer = load_tokenizer(adapter if has_own_tokenizer else base, m)
    dtype = torch_dtype(m.dtype, hw)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": m.trust_remote_code, "revision": m.revision}
    if m.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if hw.cuda else torch.bfloat16,
        )
        kwargs["device_map"] = {"": 0} if hw.cuda else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except OSError as err:
        raise UserError(f"model.name: {base}: cannot load the model ({first_line(err)})") from None
    model.config.use_cache = False  # training; generation turns the cache back on itself

    if m.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = _apply_lora(model, recipe, adapter)
    record_base(model, base)  # saved adapters name their base absolutely: they load from any folder
    return LoadedModel(model, tokenizer, backend, base_name=recorded_name(base), adapter_from=adapter)


def _apply_lora(model: Any, recipe: Recipe, adapter: str | None) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    lora = recipe.lora
    if adapter:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=lora.enabled)
        if not lora.enabled:
            if recipe.model.load_in_4bit:
                raise UserError("lora.enabled: false with a 4-bit base: full fine-tuning needs unquantized weights")
            model = model.merge_and_unload()  # full fine-tuning starts from base + adapter
        return model
    if not lora.enabled:
        if recipe.model.load_in_4bit:
            raise UserError("lora.enabled: false with model.load_in_4bit: true: 4-bit weights cannot be fully fine-tuned")
        return model
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_model_and_tokenizer(recipe: Recipe, hw: Hardware | None = None, backend: BackendChoice | None = None,
                             base: str | None = None) -> LoadedModel:
    """Model (with LoRA applied or adapter resumed) and tokenizer, through `backend` (a training run passes the
    one its set-up chose; a standalone caller gets the recipe's, resolved for this machine). `base`: the base
    model of the adapter folder `model.name`, already found and checked (find_adapter_base); None: the
    adapter's recorded one. Adapters saved from the model record their base absolutely (a hub id as is)."""
    hw = hw or detect_hardware()
    backend = backend or resolve_backend(recipe.model.backend, hw)
    if backend.name == "unsloth":
        from utils.models._unsloth import load_with_unsloth

        model, tokenizer = load_with_unsloth(recipe.model, recipe.lora, seed=recipe.data.seed)
        adapter = recipe.model.name if adapter_base(recipe.model.name) else None
        base = base or adapter_base(recipe.model.name) or recipe.model.name
        record_base(model, base)
        return LoadedModel(model, tokenizer, backend, base_name=recorded_name(base), adapter_from=adapter)
    return _load_hf(recipe, hw, backend, base)
