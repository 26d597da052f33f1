"""Score only the completion tokens through TRL's fused LM head on CPU.

Why: TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`) projects the hidden states onto the
vocabulary only at positions that have a label, but only where Triton runs (`_use_triton(device)`). Elsewhere
it scores every position, prompt included, so that compiled backends (Neuron) see fixed shapes. On CPU
nothing is compiled, and the extra positions are pure cost: with SmolLM2's 49k-token head, ~100 prompt
tokens per 64 completion tokens, and a backward that recomputes every tile, the head over all positions is
a large share of a CPU step. The per-token log-probs of the completion are the same either way (a test checks).
"""

from __future__ import annotations

from typing import Any

_ORIGINAL = "_trl_use_triton"  # TRL's own function, kept on our wrapper so that it can be put back


def score_completion_tokens_only(enabled: bool = True) -> bool:
    """Make TRL's fused LM head skip unlabelled (prompt) positions on CPU too (`enabled=False` restores TRL's
    behaviour: benchmarks time both in one process). Process-wide and idempotent. Returns whether the switch
    is on; False also when the installed TRL has no such switch (TRL then scores every position, as before)."""
    from trl.trainer import utils as trl_utils

    current = getattr(trl_utils, "_use_triton", None)
    if current is None:
        return False
    original = getattr(current, _ORIGINAL, current)
    if not enabled:
        trl_utils._use_triton = original
        return False
    if current is original:

        def compact_on_cpu(device: Any) -> bool:
            return device.type == "cpu" or original(device)

        setattr(compact_on_cpu, _ORIGINAL, original)
        trl_utils._use_triton = compact_on_cpu
    return True
