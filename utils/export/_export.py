"""One export, start to finish: find the adapter and its base, compute the reference (base + adapter in fp32),
merge, write into a hidden folder, reload and verify what was written, then rename it to --out."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.errors import UserError, first_line
from utils.export._atomic import check_out_folder, staged_folder
from utils.export._card import model_card
from utils.export._gguf_out import check_gguf_type, write_gguf
from utils.export._merge import attach_adapter, cast, default_dtype, export_size_bytes, load_base, merged_model
from utils.export._source import ExportSource, find_source, verification_prompts
from utils.export._verify import TOLERANCES, Check, Reference, reference_outputs, tokenize_prompts, verify_outputs
from utils.files import check_free_space


@dataclass
class ExportOptions:
    source: str | Path  # a run folder or an adapter folder
    out: Path
    checkpoint: int | None = None
    base: str | None = None  # overrides the adapter's recorded base
    dtype: str | None = None  # bf16 | fp16 | fp32; None: the precision the base was published in
    adapter_only: bool = False
    gguf: str | None = None
    verify: bool = True
    force: bool = False
    max_shard_size: str = "2GB"
    push_to_hub: str | None = None


@dataclass
class ExportResult:
    out: Path
    dtype: str
    checks: list[Check]
    adapter_effect: float | None
    gguf_file: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def check_options(options: ExportOptions) -> None:
    """Everything that can be refused before the model is loaded."""
    check_out_folder(Path(options.out), options.force)
    if options.adapter_only and options.gguf:
        raise UserError("--gguf writes a merged model: it cannot go with --adapter-only")
    if options.gguf:
        check_gguf_type(options.gguf)
    if options.push_to_hub:
        from huggingface_hub import get_token

        if not get_token():
            raise UserError(f"--push-to-hub {options.push_to_hub}: no Hugging Face token configured "
                            "(run `hf auth login` or set HF_TOKEN)")


def export(options: ExportOptions, log: Callable[[str], None] = print) -> ExportResult:
    check_options(options)
    out, timer = Path(options.out), _Timer()
    source = find_source(options.source, options.checkpoint, options.base)
    dtype = options.dtype or ("fp32" if options.adapter_only else default_dtype(source.base))
    log(f"adapter {source.adapter_dir} on base {source.base}")
    tokenizer = _tokenizer(source)
    peft_model = attach_adapter(load_base(source.base), source.adapter_dir, source.base)
    if options.gguf:
        check_gguf_type(options.gguf, peft_model.config.model_type)
    timer.lap("load")
    prompts, origin = verification_prompts(source, tokenizer)
    reference = reference_outputs(peft_model, tokenizer, prompts) if options.verify else None
    _warn_if_inert(reference, log)
    timer.lap("reference")
    check_free_space(out, export_size_bytes(peft_model, dtype, options.gguf))
    with staged_folder(out, options.force) as staging:
        log(f"writing {'adapter' if options.adapter_only else f'merged model ({dtype})'} into {staging}")
        checks, gguf_file = _write(peft_model, tokenizer, source, staging, options, dtype, reference, log)
        timer.lap("write+verify")
        refuse_failed(checks, out)
        card = model_card(source, "adapter" if options.adapter_only else "merged", dtype,
                          checks if options.verify else None, origin, reference.adapter_effect if reference else None)
        (staging / "README.md").write_text(card)
    if options.push_to_hub:
        _push(out, options.push_to_hub)
    effect = reference.adapter_effect if reference else None
    final_gguf = out / gguf_file.name if gguf_file else None
    return ExportResult(out, dtype, checks, effect, final_gguf, timer.seconds)


def _write(peft_model: Any, tokenizer: Any, source: ExportSource, staging: Path, options: ExportOptions, dtype: str,
           reference: Reference | None, log: Callable[[str], None]) -> tuple[list[Check], Path | None]:
    """The adapter or the merged model (and GGUF) into `staging`, each reloaded and checked when verifying."""
    try:
        if options.adapter_only:
            return _write_adapter(peft_model, tokenizer, source, staging, reference), None
        return _write_merged(peft_model, tokenizer, staging, options, dtype, reference, log)
    except OSError as err:
        if err.errno == errno.ENOSPC:  # another writer took the space checked for before writing
            raise UserError(f"--out {options.out}: the disk filled up while writing; nothing was written") from None
        raise


def _tokenizer(source: ExportSource) -> Any:
    """The adapter folder's own tokenizer when it has one (saved by the run, chat template included)."""
    from transformers import AutoTokenizer

    folder = source.adapter_dir if (source.adapter_dir / "tokenizer_config.json").is_file() else source.base
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise UserError(f"{folder}: cannot load the tokenizer ({first_line(err)})") from None


def _write_merged(peft_model: Any, tokenizer: Any, staging: Path, options: ExportOptions, dtype: str,
                  reference: Reference | None, log: Callable[[str], None]) -> tuple[list[Check], Path | None]:
    from transformers import AutoModelForCausalLM

    merged = merged_model(peft_model)
    tokenizer.save_pretrained(staging)
    gguf_file = None
    if options.gguf:  # from the fp32 merge, before the cast: one rounding, not two
        gguf_file = write_gguf(merged, tokenizer, staging, staging / f"{options.out.name}-{options.gguf}.gguf", options.gguf)
    cast(merged, dtype).save_pretrained(staging, max_shard_size=options.max_shard_size)
    del merged
    if reference is None:
        return [], gguf_file
    import torch

    log("verifying: reloading the export and comparing with base + adapter")
    exported = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32)
    checks = [check_folder(exported, staging, tokenizer, reference, dtype)]
    del exported
    if gguf_file:
        checks.append(_check_gguf(gguf_file, tokenizer, reference, options.gguf))
    return checks, gguf_file


def _write_adapter(peft_model: Any, tokenizer: Any, source: ExportSource, staging: Path,
                   reference: Reference | None) -> list[Check]:
    """Only the adapter weights and config (no optimizer, scheduler or trainer state), with the tokenizer."""
    from peft import PeftModel

    peft_model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if reference is None:
        return []
    reloaded = PeftModel.from_pretrained(load_base(source.base), str(staging)).eval()
    return [check_folder(reloaded, staging, tokenizer, reference, "fp32")]


def check_folder(model: Any, staging: Path, tokenizer: Any, reference: Reference, dtype: str,
                 what: str = "export", tokens_must_match: bool = True) -> Check:
    """The written folder, reloaded: logits, greedy text, and the saved tokenizer (chat template included)
    turning the prompts into the same ids."""
    from transformers import AutoTokenizer

    check = verify_outputs(model.eval(), tokenizer, reference, TOLERANCES[dtype], f"{what} ({dtype})")
    reloaded = AutoTokenizer.from_pretrained(staging)
    differ = len(reference.prompts) - _same_tokens(reloaded, reference)
    if reloaded.chat_template != tokenizer.chat_template:
        check.greedy_ok = False
        check.greedy_note += "; the saved chat template differs from the original"
    if differ:
        check.greedy_ok = check.greedy_ok and not tokens_must_match
        check.greedy_note += f"; the saved tokenizer splits {differ} of {len(reference.prompts)} prompts differently"
    return check


def _same_tokens(tokenizer: Any, reference: Reference) -> int:
    """How many of the reference's prompts `tokenizer` turns into the same ids."""
    ids = tokenize_prompts(tokenizer, reference.prompts)
    return sum(a.tolist() == b.tolist() for a, b in zip(ids, reference.input_ids, strict=True))


def _check_gguf(gguf_file: Path, tokenizer: Any, reference: Reference, quant: str) -> Check:
    """transformers reads GGUF (dequantized to fp32): the same checks, with the quant type's tolerance."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    check = verify_outputs(AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval(), tokenizer, reference,
                    TOLERANCES[quant], f"GGUF {quant}")
    gguf_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    differ = len(reference.prompts) - _same_tokens(gguf_tokenizer, reference)
    if differ:
        # GGUF stores a pre-tokenizer by name only; a tokenizer llama.cpp does not know splits text its own way
        check.greedy_note += f"; the GGUF's tokenizer splits {differ} of {len(reference.prompts)} prompts differently"
    return check


def refuse_failed(checks: list[Check], out: Path) -> None:
    failed = [c for c in checks if not c.passed]
    if failed:
        raise UserError(f"verification failed, nothing written to {out}: {failed[0].describe()} "
                        "(--no-verify exports anyway)")


def _warn_if_inert(reference: Reference | None, log: Callable[[str], None]) -> None:
    if reference is not None and reference.adapter_effect == 0.0:
        log("warning: this adapter does not change the base's outputs (its B matrices are zero: saved before "
            "training moved it?); the export equals the base")


def _push(out: Path, repo: str) -> None:
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(out))
    except Exception as err:  # noqa: BLE001  # network or permission: the export itself is done and kept
        raise UserError(f"--push-to-hub {repo}: upload failed ({first_line(err)}); the export is in {out}") from None


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now
