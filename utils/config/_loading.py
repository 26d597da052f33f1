"""Reading a recipe: YAML files, `extends:` chains and `--set key=value` overrides, each read once."""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.config._sections import Recipe
from utils.config._validation import recipe_from_dict
from utils.errors import UserError, first_line


@dataclass
class RecipeSource:
    """A recipe as read from disk: `extends:` followed, `--set` overrides applied; not yet validated.

    The backend must be known before validation (which imports TRL) so Unsloth can patch TRL first:
    `requested_backend` reads it from here, and `build()` validates once.
    """

    path: Path
    raw: dict[str, Any]
    base: dict[str, Any]  # before the overrides, to blame a bad one
    overrides: list[tuple[str, str, Any]] = field(default_factory=list)  # (as typed, key, value)

    @property
    def requested_backend(self) -> str:
        model = self.raw.get("model")
        backend = model.get("backend", "auto") if isinstance(model, dict) else "auto"
        return backend if isinstance(backend, str) else "auto"

    @property
    def requested_vllm_standby(self) -> bool:
        """model.vllm_standby as read: Unsloth reads its standby switch when imported, before validation."""
        model = self.raw.get("model")
        return isinstance(model, dict) and model.get("vllm_standby") is True

    def build(self) -> Recipe:
        """Validate into a Recipe. On a mistake, name the `--set` that made it, if one did."""
        try:
            return recipe_from_dict(self.raw, where=str(self.path), source=self.path)
        except UserError:
            self._blame_override()
            raise

    def _blame_override(self) -> None:
        # Only on the error path: replay the overrides one at a time to find the first that breaks.
        raw = copy.deepcopy(self.base)
        recipe_from_dict(raw, where=str(self.path), source=self.path)
        for text, key, value in self.overrides:
            set_path(raw, key, value, where=f"--set {text}")
            recipe_from_dict(raw, where=f"--set {text}", source=self.path)


def read_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> RecipeSource:
    """Read a recipe file (following `extends:`) and apply `--set key=value` overrides, without validating."""
    path = Path(path)
    base = _load_with_extends(path, chain=())
    raw = copy.deepcopy(base)
    parsed = []
    for text in overrides:
        key, value = parse_override(text)
        set_path(raw, key, value, where=f"--set {text}")
        parsed.append((text, key, value))
    return RecipeSource(path, raw, base, parsed)


def load_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe: the usual entry point."""
    return read_recipe(path, overrides).build()


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"{path}: recipe file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file (expected a YAML recipe)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or first_line(err)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if data is None:
        raise UserError(f"{path}: recipe is empty")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def _load_with_extends(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        names = " -> ".join(p.name for p in (*chain, resolved))
        raise UserError(f"{path}: extends cycle: {names}")
    data = _read_yaml_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise UserError(f"{path}: extends: expected a file path (str), got {parent!r}")
    parent_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
    if not parent_path.exists():
        raise UserError(f"{path}: extends: {parent_path}: recipe file not found")
    base = _load_with_extends(parent_path, (*chain, resolved))
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else replaces. A None value removes the key (default)."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_KEY_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value` -> (path, value typed as YAML would type it)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_PATH.match(key):
        raise UserError(f"--set {text}: expected section.key=value (e.g. training.learning_rate=1e-5)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {text}: value is not valid YAML") from None
    return key, parsed


def set_path(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set `a.b.c` in a nested mapping, creating sections on the way.

    The `rewards` section's keys are reward names, and a custom reward's name is an import path with
    dots: `rewards.NAME=weight` sets the reward NAME (dots and all); `rewards.NAME.PARAM=value` sets a
    parameter of a registry reward (registry names have no dots).
    """
    parts = _reward_path(key.split("."))
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"{where}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _reward_path(parts: list[str]) -> list[str]:
    if parts[0] != "rewards" or len(parts) <= 2:
        return parts
    from utils.rewards import REWARDS  # lazy: the registry pulls in utils.answers

    if len(parts) == 3 and parts[1] in REWARDS:
        return parts
    return ["rewards", ".".join(parts[1:])]
