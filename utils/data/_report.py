"""What happened to the data: one FilterStep per filter, the DataReport, and PreparedData (rows + report)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FilterStep:
    """One filter's effect: rows removed from what the previous steps left."""

    name: str
    setting: str
    removed: int = 0
    remaining: int = 0
    skipped: str | None = None  # why the filter did not run (column absent, no tokenizer, ...)
    detail: dict[str, int] = field(default_factory=dict)  # e.g. decontamination hits per eval set
    seconds: float = 0.0

    def line(self) -> str:
        if self.skipped:
            return f"{self.name:<22} {self.setting:<28} skipped: {self.skipped}"
        extra = f" ({', '.join(f'{k}: {v}' for k, v in self.detail.items())})" if self.detail else ""
        return f"{self.name:<22} {self.setting:<28} -{self.removed:<7} -> {self.remaining}{extra}"


@dataclass
class DataReport:
    """What happened to the data, printable (`print(report)`) and JSON-serialisable (`to_dict`)."""

    source: str = ""
    format: str = ""
    columns: list[str] = field(default_factory=list)
    roles: str = ""  # which column is which: "problem <- question, answer <- answer"
    rows_loaded: int = 0
    gold_from: dict[str, int] = field(default_factory=dict)  # where gold answers came from
    steps: list[FilterStep] = field(default_factory=list)
    rows_after_filters: int = 0
    validation_rows: int = 0
    validation_from: str = ""
    train_rows: int = 0
    subset: int | None = None
    seed: int = 0
    prompt_format: str = ""
    pass_rates: str = ""  # the pass-rate file read (data.filters.pass_rate, data.curriculum.by: pass_rate)
    order: str = ""  # the train split's order (data.curriculum), in words; "" = as split (TRL shuffles it)
    cache: str = "off"  # off | miss | hit
    cache_path: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (load, filters, format, save)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataReport:
        data = dict(data)
        data["steps"] = [FilterStep(**s) for s in data.get("steps", [])]
        return cls(**data)

    def removed_by(self, name: str) -> int:
        return sum(s.removed for s in self.steps if s.name == name)

    def format_text(self) -> str:
        gold = ", ".join(f"{k}: {v}" for k, v in self.gold_from.items())
        lines = [
            f"Data       {self.source}",
            f"           format {self.format}; {self.rows_loaded} rows; gold answers from {gold or '-'}",
            f"           columns: {self.roles or '-'}",
            "Filters",
            *(f"  {s.line()}" for s in self.steps),
            f"Kept       {self.rows_after_filters} of {self.rows_loaded} rows",
            f"Split      validation {self.validation_rows} ({self.validation_from}); train {self.train_rows}"
            + (f" (subset of {self.subset}, seed {self.seed})" if self.subset else f" (seed {self.seed})"),
            *([f"Pass rates {self.pass_rates}"] if self.pass_rates else []),
            *([f"Order      {self.order}"] if self.order else []),
            f"Prompt     {self.prompt_format}",
            f"Cache      {self.cache}" + (f": {self.cache_path}" if self.cache_path else "")
            + f" ({self.seconds:.1f} s)",
        ]
        return "\n".join(lines)

    __str__ = format_text


@dataclass
class PreparedData:
    """The training data: `train` and `validation` Datasets (OUTPUT_COLUMNS) and the report."""

    train: Any  # datasets.Dataset
    validation: Any  # datasets.Dataset
    report: DataReport

    def __str__(self) -> str:
        return str(self.report)

