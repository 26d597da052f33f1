"""GGUF in: a GGUF model -> a plain trainable checkpoint, written atomically and verified by logits and greedy
text against the model as transformers reads the GGUF file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.data import render_prompt
from utils.export._atomic import check_out_folder, staged_folder
from utils.export._export import check_folder, refuse_failed
from utils.export._source import FALLBACK_PROBLEMS
from utils.export._verify import Check, reference_outputs
from utils.files import check_free_space
from utils.formats import DEFAULT_FORMAT, build_messages
from utils.models import load_gguf, plain_model


@dataclass
class ImportResult:
    out: Path
    check: Check | None


def import_gguf(gguf_path: str | Path, out: str | Path, force: bool = False, verify: bool = True,
                log: Callable[[str], None] = print) -> ImportResult:
    out = Path(out)
    check_out_folder(out, force)
    gguf_model, tokenizer = load_gguf(gguf_path)
    plain = plain_model(gguf_model)
    reference = reference_outputs(gguf_model, tokenizer, _prompts(tokenizer)) if verify else None
    check_free_space(out, sum(p.numel() for p in plain.parameters()) * 4)
    with staged_folder(out, force) as staging:
        log(f"writing a plain fp32 checkpoint into {staging}")
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        check = None
        if reference is not None:
            from transformers import AutoModelForCausalLM

            log("verifying: reloading the checkpoint and comparing with the GGUF model")
            # transformers re-reads a saved tokenizer with its class's own pre-tokenizer rules, which may split
            # text differently from the GGUF's in-memory one: reported, not refused (the weights are the point)
            check = check_folder(AutoModelForCausalLM.from_pretrained(staging), staging, tokenizer, reference, "fp32",
                                 "checkpoint", tokens_must_match=False)
            refuse_failed([check], out)
    return ImportResult(out, check)


def _prompts(tokenizer: Any) -> list[str]:
    """Math prompts through the chat template (raw text when the GGUF carries no template)."""
    if not getattr(tokenizer, "chat_template", None):
        return list(FALLBACK_PROBLEMS)
    return [render_prompt(build_messages(p, DEFAULT_FORMAT), tokenizer) for p in FALLBACK_PROBLEMS]
