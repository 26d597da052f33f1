"""A LoRA adapter folder's base model: what the adapter records, how training records it (an absolute local
path, or a hub id, so the adapter loads from any working directory), and how a reader finds it again.

Older runs recorded `model.name` as written, e.g. `checkpoints/tiny-qwen2`, which from another folder reads
as a hub id (a long hub timeout offline). Such a relative path is looked for from the working directory and
from the folder the run was started in; what is found nowhere and cannot be a hub id is one line naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.files import write_atomic

ADAPTER_CONFIG = "adapter_config.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
BASE_HINT = "pass --base MODEL (merge_lora.py and evaluate.py take it)"


def adapter_config(path: str | Path) -> dict[str, Any] | None:
    """The adapter_config.json of a local LoRA adapter folder, or None when `path` is not one."""
    config = Path(path) / ADAPTER_CONFIG
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"model.name: {config}: unreadable adapter config ({err})") from None


def could_be_hub_id(name: str) -> bool:
    """Whether `name` has a hub id's form (owner/name), which a relative path of two parts has too."""
    return not name.startswith((".", "/", "~")) and bool(_HUB_ID.match(name))


def recorded_name(name: str) -> str:
    """How an adapter should record its base: an existing local folder as its absolute path, else as given."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def record_base(model: Any, base: str) -> None:
    """Make every adapter of `model` record `base` as recorded_name gives it: PEFT writes the name the base was
    loaded by (relative when model.name was) and keeps an adapter's own recorded name when it continues one."""
    for config in getattr(model, "peft_config", {}).values():
        config.base_model_name_or_path = recorded_name(base)


# Where restore_base keeps the name the adapter was saved with (Unsloth's pre-quantized repo), for reproducibility.
QUANTIZED_BASE_KEY = "quantized_base_model_name_or_path"


def restore_base(folder: str | Path, base: str) -> bool:
    """Make a saved adapter record the user's base (`Qwen/Qwen2.5-0.5B-Instruct`) where Unsloth wrote the
    pre-quantized repo it loaded instead (`unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit`): merge and evaluation then
    use the 16-bit base unless asked otherwise (--base). The saved name is kept under QUANTIZED_BASE_KEY.
    Returns whether the file changed."""
    config = adapter_config(folder)
    wanted = recorded_name(base)
    if config is None or config.get("base_model_name_or_path") == wanted:
        return False
    config[QUANTIZED_BASE_KEY] = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = wanted
    write_atomic(Path(folder) / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return True


def _find_relative(base: str, started_in: Path | None) -> str | None:
    for root in (Path.cwd(), started_in):
        if root is not None and (root / base).expanduser().is_dir():
            return str((root / base).expanduser().resolve())
    return None


def adapter_base(name: str | Path, started_in: Path | None = None) -> str | None:
    """If `name` is a local LoRA adapter folder, the base model it was trained on; else None. A relative base
    (older runs) is looked for from here, then from `started_in` (the folder its run was started in); not found,
    it is returned as recorded."""
    config = adapter_config(name)
    if config is None:
        return None
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{Path(name) / ADAPTER_CONFIG}: no base_model_name_or_path: "
                        f"cannot tell which model the adapter belongs to; {BASE_HINT}")
    base = str(base)
    if Path(base).expanduser().is_absolute():
        return base
    return _find_relative(base, started_in) or base


def find_adapter_base(folder: str | Path, started_in: Path | None = None, given: str | None = None) -> str | None:
    """The base model to load adapter `folder` on (None: a full model folder), checked before anything loads:
    `given` (a script's --base) when set, else the recorded one (adapter_base), which must exist where it is a
    path. Evaluation and export both read an adapter's base here."""
    if adapter_config(folder) is None:
        return None
    if given:
        return given
    base = adapter_base(folder, started_in)
    assert base is not None  # an adapter folder: adapter_base raised or found a name
    path = Path(base).expanduser()
    if path.is_absolute():
        if not path.is_dir():
            raise UserError(f"{folder}: LoRA adapter whose base model {base} is missing "
                            f"({ADAPTER_CONFIG} base_model_name_or_path): {BASE_HINT}")
        return base
    if could_be_hub_id(base):
        return base  # a hub id, or a relative path found nowhere here: only the hub can tell
    where = f"from {Path.cwd()}" + (f" nor from {started_in}, where its run was started" if started_in else "")
    raise UserError(f"{folder}: the adapter records its base model as the relative path {base}, not found {where}: "
                    f"{BASE_HINT}")
