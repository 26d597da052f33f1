"""Export: merge a LoRA adapter into its base, verify what was written, model card, GGUF out and in."""

from utils.export._atomic import check_free_space, check_out_folder, staged_folder
from utils.export._card import model_card, run_metrics
from utils.export._export import ExportOptions, ExportResult, check_options, export
from utils.export._gguf_out import GGUF_TYPES, check_gguf_type, pre_tokenizer_name, write_gguf
from utils.export._import import ImportResult, import_gguf
from utils.export._merge import DTYPES, attach_adapter, check_adapter_fits, load_base, merged_model
from utils.export._source import ExportSource, find_source, verification_prompts
from utils.export._verify import TOLERANCES, Check, Reference, compare, reference_outputs

__all__ = [
    "DTYPES",
    "GGUF_TYPES",
    "TOLERANCES",
    "Check",
    "ExportOptions",
    "ExportResult",
    "ExportSource",
    "ImportResult",
    "Reference",
    "attach_adapter",
    "check_adapter_fits",
    "check_free_space",
    "check_gguf_type",
    "check_options",
    "check_out_folder",
    "compare",
    "export",
    "find_source",
    "import_gguf",
    "load_base",
    "merged_model",
    "model_card",
    "pre_tokenizer_name",
    "reference_outputs",
    "run_metrics",
    "staged_folder",
    "verification_prompts",
    "write_gguf",
]
