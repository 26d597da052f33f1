"""Recipes: typed sections, reading with `extends:` and `--set`, validation against the installed TRL."""

from utils.config._loading import RecipeSource, deep_merge, load_recipe, parse_override, read_recipe, set_path
from utils.config._sampling import sampling_settings, trl_default
from utils.config._sections import (
    CurriculumSection,
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
    documents_bool,
    grpo_config_fields,
    recipe_from_dict,
    sections_from_dict,
)

__all__ = [
    "CurriculumSection",
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
    "documents_bool",
    "grpo_config_fields",
    "load_recipe",
    "parse_override",
    "read_recipe",
    "recipe_from_dict",
    "sampling_settings",
    "sections_from_dict",
    "set_path",
    "trl_default",
]
