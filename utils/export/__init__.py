"""Export: merge a LoRA adapter into its base, verify what was written, model card, GGUF out and in.

The face lists what scripts, benchmarks and tests use; the steps (loading, merging, verification, the card)
stay private to the package.
"""

from utils.export._atomic import staged_folder
from utils.export._export import ExportOptions, ExportResult, export
from utils.export._gguf_out import GGUF_TYPES
from utils.export._import import ImportResult, import_gguf
from utils.export._source import ExportSource, find_source
from utils.export._verify import TOLERANCES

__all__ = [
    "GGUF_TYPES",
    "TOLERANCES",
    "ExportOptions",
    "ExportResult",
    "ExportSource",
    "ImportResult",
    "export",
    "find_source",
    "import_gguf",
    "staged_folder",
]
