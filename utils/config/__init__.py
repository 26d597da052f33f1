"""Recipes: typed sections, reading with `extends:` and `--set`, validation against the installed TRL."""

from utils.config._loading import RecipeSource, deep_merge, load_recipe, parse_override, read_recipe, set_path
from utils.config._sections import (
    DataSection,
    DynamicSamplingSection,
    EvalSection,
    FiltersSection,
    LoraSection,
    ModelSection,
    OutputSection,
    PromptSection,
    Recipe,
)
from utils.config._validation import (
    grpo_config_fields,
    recipe_from_dict,
    sections_from_dict,
)

__all__ = [
    "DataSection",
    "DynamicSamplingSection",
    "EvalSection",
    "FiltersSection",
    "LoraSection",
    "ModelSection",
    "OutputSection",
    "PromptSection",
    "Recipe",
    "RecipeSource",
    "deep_merge",
    "grpo_config_fields",
    "load_recipe",
    "parse_override",
    "read_recipe",
    "recipe_from_dict",
    "sections_from_dict",
    "set_path",
]
