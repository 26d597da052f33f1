"""TRL's fused LM head scores only the completion tokens on CPU (utils/training/_cpu_logprobs): the same
log-probs and gradients as TRL's every-position scoring, from fewer rows through the vocabulary projection."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from trl.trainer import utils as trl_utils

from utils.training._cpu_logprobs import score_completion_tokens_only

PROMPT, COMPLETION = 12, 6


@pytest.fixture
def restore_trl():
    """Each test starts from TRL's own switch (a trainer built earlier in the session turned ours on) and
    leaves the process as it found it."""
    before = trl_utils._use_triton
    score_completion_tokens_only(False)
    yield
    trl_utils._use_triton = before


def scored(model_dir, compact: bool, monkeypatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Completion log-probs, LoRA gradients and the rows the head projected, for one forward + backward."""
    score_completion_tokens_only(compact)
    rows = []
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *args: rows.append(hidden.shape[0]) or apply(hidden, *args))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(0, model.config.vocab_size, (3, PROMPT + COMPLETION), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :PROMPT] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    logps = out.log_probs[:, -COMPLETION:]
    logps.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logps.detach(), grads, rows[0]


def test_completion_only_scoring_gives_trl_s_log_probs_and_gradients(tiny_model_dir, monkeypatch, restore_trl):
    every_logps, every_grads, every_rows = scored(tiny_model_dir, False, monkeypatch)
    compact_logps, compact_grads, compact_rows = scored(tiny_model_dir, True, monkeypatch)
    assert every_rows == 3 * (PROMPT + COMPLETION - 1)  # TRL off Triton: every position through the head
    assert compact_rows == 3 * COMPLETION  # ours: the labelled ones only
    torch.testing.assert_close(compact_logps, every_logps, rtol=1e-5, atol=1e-5)
    assert every_grads.keys() == compact_grads.keys()
    for name, grad in every_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_switch_is_idempotent_and_restores_trl_s_own(restore_trl):
    original = trl_utils._use_triton
    assert score_completion_tokens_only() and score_completion_tokens_only()
    patched = trl_utils._use_triton
    assert patched is not original and patched(torch.device("cpu"))
    score_completion_tokens_only()
    assert trl_utils._use_triton is patched  # not wrapped twice
    assert score_completion_tokens_only(False) is False and trl_utils._use_triton is original
