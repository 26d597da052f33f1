"""The test fixtures themselves: the tiny model works, the sample rows match OpenR1's schema."""

from tests.repo import OPENR1_COLUMNS


def test_tiny_model_renders_chatml_and_generates(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2" and model.num_parameters() < 200_000
    inputs = tiny_tokenizer(text, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or tiny_tokenizer.eos_token_id in out[0].tolist()
    assert tiny_tokenizer.eos_token == "<|im_end|>" and tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id


def test_sample_rows_have_exact_openr1_schema(openr1_rows):
    assert len(openr1_rows) >= 40
    for row in openr1_rows:
        assert list(row) == OPENR1_COLUMNS
        assert isinstance(row["generations"], list) and isinstance(row["is_reasoning_complete"], list)
        assert row["correctness_count"] == sum(row["correctness_math_verify"])
        assert row["messages"][0]["role"] == "user"


def test_sample_rows_cover_answer_kinds(openr1_rows):
    answers = {r["answer"] for r in openr1_rows}
    kinds = {r["question_type"] for r in openr1_rows}
    assert {"math-word-problem", "MCQ", "proof"} <= kinds
    assert {"84", "\\frac{3}{4}", "-\\ln 2", "(2,3)", "(-2,2)", "A", "proof", "-3"} <= answers
