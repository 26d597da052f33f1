"""One benchmark, resumably: per-sample JSONL written batch by batch, then its summary.

OUT/NAME/ holds settings.json (what the samples were made with), samples.jsonl (one line per completion,
appended and flushed after every batch) and summary.json. A rerun with the same settings skips the samples
already on file, so an interrupted evaluation continues where it stopped; a line torn by a kill is dropped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from utils.answers import extract_answer, verify_batch
from utils.data import render_prompts
from utils.errors import UserError
from utils.evaluation._benchmarks import LoadedBenchmark
from utils.evaluation._generation import Sampling, length_order
from utils.evaluation._metrics import summarize
from utils.files import read_jsonl, write_atomic

SETTINGS, SAMPLES, SUMMARY = "settings.json", "samples.jsonl", "summary.json"


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a file."""
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def read_samples(path: Path) -> list[dict]:
    """The complete records of a samples file; a torn last line (a kill mid-write) is dropped from the file."""
    return read_jsonl(path, repair=True)


def kept_samples(out_dir: Path) -> int:
    """Sample lines kept in an evaluation folder, every benchmark together (what a stop leaves)."""
    return sum(len(read_samples(path)) for path in Path(out_dir).glob(f"*/{SAMPLES}"))


def discard_samples(folder: Path) -> None:
    """A benchmark's settings, samples and summary, gone: it starts over (--force)."""
    for name in (SETTINGS, SAMPLES, SUMMARY):
        (folder / name).unlink(missing_ok=True)


def _check_settings(folder: Path, settings: dict, force: bool) -> None:
    path = folder / SETTINGS
    if force:
        discard_samples(folder)
    elif path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in settings.keys() | saved.keys() if settings.get(k) != saved.get(k))
        if changed:
            key = changed[0]
            raise UserError(f"{folder}: holds samples made with other settings ({key}: {saved.get(key)!r} there, "
                            f"{settings.get(key)!r} now): pass --force to start over, or choose another --out")
    write_json(path, settings)


def _progress(total: int, shown: dict[str, str], name: str, unit: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=name, unit=unit, dynamic_ncols=True, file=sys.stderr, disable=not enabled)
    bar.set_postfix(**shown)
    return bar


def _token_ticker(bar: Any, shown: dict[str, str], max_new_tokens: int) -> Callable[[int], None]:
    """Shows the decoding step of the batch in progress beside what the bar already shows (every 8 steps)."""
    def tick(step: int) -> None:
        if step % 8 == 0 or step == max_new_tokens:
            bar.set_postfix(**shown, token=f"{step}/{max_new_tokens}")
    return tick


class BenchmarkRun:
    """Evaluates `bench` with `generator` into OUT/NAME/, skipping samples already there."""

    def __init__(self, generator: Any, bench: LoadedBenchmark, out_dir: Path, sampling: Sampling, samples: int,
                 model_label: str, force: bool = False, progress: bool = True) -> None:
        self.generator, self.bench, self.sampling, self.k = generator, bench, sampling, samples
        self.folder = Path(out_dir) / bench.name
        self.model_label, self.force, self.progress = model_label, force, progress

    def settings(self) -> dict[str, Any]:
        first = self.bench.rows[0]["prompt"]
        return {"model": self.model_label, "benchmark": self.bench.name, "samples": self.k,
                "dtype": getattr(self.generator, "dtype", None), **self._quantization(),
                **asdict(self.sampling), "system_prompt": first[0]["content"] if first[0]["role"] == "system" else ""}

    def _quantization(self) -> dict[str, Any]:
        """{quantization: ...} for quantized weights only: an older folder's settings (none recorded) still match."""
        method = getattr(self.generator, "quantization", None)
        return {"quantization": method} if method else {}

    def run(self) -> dict[str, Any]:
        """Generate what is missing, then write and return the summary."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _check_settings(self.folder, self.settings(), self.force)
        wanted = {row["id"] for row in self.bench.rows}
        records = [r for r in read_samples(self.folder / SAMPLES) if r["id"] in wanted]
        done = {(r["id"], r["sample"]) for r in records}
        pending = [(row, j) for row in self.bench.rows for j in range(self.k) if (row["id"], j) not in done]
        started = time.perf_counter()
        if pending:
            records += self._generate(pending, records)
        summary = summarize(records, self.k, self.bench.breakdown)
        summary.update(benchmark=self.bench.name, source=self.bench.source, model=self.model_label,
                       backend=self.generator.name, dtype=getattr(self.generator, "dtype", None),
                       **self._quantization(),
                       max_new_tokens=self.sampling.max_new_tokens,
                       without_gold=self.bench.without_gold, generated_now=len(pending),
                       seconds=round(time.perf_counter() - started, 2),
                       problem_ids=sorted(wanted))  # which problems: compare.py matches evaluations by them
        write_json(self.folder / SUMMARY, summary)
        return summary

    def _generate(self, pending: list[tuple[dict, int]], previous: list[dict]) -> list[dict]:
        texts = render_prompts([row["prompt"] for row, _ in pending], self.generator.tokenizer)
        order = length_order(texts)
        size = self.generator.batch_size
        correct = sum(bool(r["correct"]) for r in previous)
        new: list[dict] = []
        shown = {"acc": f"{correct / len(previous):.1%}" if previous else "-"}
        bar = _progress(len(pending), shown, self.bench.name, "problem" if self.k == 1 else "sample", self.progress)
        if hasattr(self.generator, "on_token") and self.progress:
            self.generator.on_token = _token_ticker(bar, shown, self.sampling.max_new_tokens)
        try:
            with (self.folder / SAMPLES).open("a", encoding="utf-8") as out:
                for start in range(0, len(order), size):
                    idx = order[start: start + size]
                    batch = self._score([pending[i] for i in idx], [texts[i] for i in idx], start)
                    # One write per line: Ctrl-C lands between lines, and the flush makes each batch durable.
                    for record in batch:
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
                    new += batch
                    correct += sum(r["correct"] for r in batch)
                    bar.update(len(batch))
                    shown["acc"] = f"{correct / (len(previous) + len(new)):.1%}"
                    bar.set_postfix(**shown)
        finally:
            bar.close()
            if hasattr(self.generator, "on_token"):
                self.generator.on_token = None
        return new

    def _score(self, items: list[tuple[dict, int]], texts: list[str], offset: int) -> list[dict]:
        # A seed per batch position: sampled runs repeat exactly when rerun from scratch.
        generated = self.generator.generate_batch(texts, replace(self.sampling, seed=self.sampling.seed + offset))
        predicted = [extract_answer(g.text) for g in generated]
        verdicts = verify_batch([row["answer"] for row, _ in items], predicted)
        records = []
        for (row, j), text, g, p, v in zip(items, texts, generated, predicted, verdicts, strict=True):
            record = {"id": row["id"], "sample": j, "problem": row["problem"], "prompt": text, "completion": g.text, "predicted": p,
                      "gold": row["answer"], "correct": bool(v), "tokens": g.tokens, "truncated": g.truncated}
            record.update({field: row.get(field) for field in self.bench.breakdown})
            records.append(record)
        return records
