"""A tiny random Qwen2 + byte-level BPE tokenizer with a ChatML template, built offline in about a second.

Used by the tests (fixtures) and by the offline demo recipe: no model hub needed.
"""

from __future__ import annotations

from pathlib import Path

from utils.formats import FORMATS

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# build_tiny_qwen2's shapes by name: the tests' tiny model, and Qwen2.5-0.5B's (24 layers, hidden 896, 14 heads, 2 KV
# heads, MLP 4864) with random weights, for GPU timings without the hub. Both keep the tiny tokenizer's vocabulary
# (about 1k tokens, not Qwen's 152k): the 0.5B shape's logits, and so its memory, are smaller than the real model's.
QWEN2_SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2},
    "qwen2.5-0.5b": {"hidden_size": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate_size": 4864},
}


def _corpus() -> list[str]:
    words = (
        "the answer is think reasoning solve problem find value number sum product equation so we get "
        "therefore let step first then total each how many what is compute simplify fraction "
        "user assistant system please reason put your final answer within boxed"
    ).split()
    tags = [tag for fmt in FORMATS.values() for tag in fmt.tags]  # so the tokenizer learns every format's tags
    latex = [r"\boxed{", r"\frac{", r"\sqrt{", r"\pi", r"\cdot", r"\left(", r"\right)", *tags, "####"]
    lines = []
    for i in range(400):
        a, b = i % 37, (i * 7) % 23
        w = " ".join(words[(i + k) % len(words)] for k in range(8))
        lines.append(f"{w} {a} + {b} = {a + b} {latex[i % len(latex)]}{a}}} {a}/{b + 1} x^{i % 5}")
    return lines


def build_tokenizer(vocab_size: int = 1024):
    """Byte-level BPE trained on a small math corpus, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def build_tiny_qwen2(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                     kv_heads: int = 2, intermediate_size: int | None = None) -> Path:
    """Write a random Qwen2ForCausalLM (safetensors) and its tokenizer to `out_dir`; returns the folder.
    The defaults are tiny; benchmarks pass a real model's shapes."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
