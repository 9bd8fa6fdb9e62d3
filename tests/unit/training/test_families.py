"""The family factory builds what each family's published checkpoint is: its parameter count at the real
shape, and at the small shape its architecture class, attention layout, tying, special tokens and chat
template, loadable with the ordinary `from_pretrained`; chat data encodes as the server will tokenize it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge.data.records import Chat, ChatMessage
from tuneforge.inference.profile import DEFAULT_CHAT_TEMPLATE
from tuneforge.inference.tokens import end_of_turn_ids
from tuneforge.training import families, formats

# The published checkpoints' parameter counts (their model cards / safetensors metadata).
PUBLISHED_PARAMETERS = {
    "llama3": 8_030_261_248,  # Llama-3.1-8B
    "qwen2.5": 494_032_768,  # Qwen2.5-0.5B
    "smollm2": 134_515_008,  # SmolLM2-135M
    "mistral": 7_241_732_096,  # Mistral-7B-v0.1
    "gpt2": 124_439_808,  # GPT-2 (124M)
}
TIED = {"llama3": False, "qwen2.5": True, "smollm2": True, "mistral": False, "gpt2": True}


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_the_real_shape_has_the_published_parameter_count(name: str) -> None:
    spec = families.FAMILIES[name]
    tokenizer = families.build_tokenizer(spec)
    config = families.model_config(spec, "real", len(tokenizer), tokenizer)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name]
    assert type(model).__name__ == spec.architecture


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("families")
    for name in families.FAMILIES:
        families.build(name, root / name)
    return root


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_a_small_checkpoint_loads_with_the_family_traits(name: str, built: Path) -> None:
    spec = families.FAMILIES[name]
    model = AutoModelForCausalLM.from_pretrained(built / name)
    tokenizer = AutoTokenizer.from_pretrained(built / name)

    assert type(model).__name__ == spec.architecture
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == TIED[name]
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (spec.bos, spec.eos, spec.pad)
    assert set(spec.specials) <= set(tokenizer.all_special_tokens)
    assert tokenizer.chat_template == spec.chat_template
    assert (
        json.loads((built / name / "tokenizer_config.json").read_text())["tokenizer_class"]
        == spec.tokenizer_class
    )
    starts_with_bos = tokenizer("Hello")["input_ids"][0] == tokenizer.bos_token_id
    assert starts_with_bos == spec.adds_bos
    turn_end = end_of_turn_ids(tokenizer, tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE)
    assert turn_end == {tokenizer.convert_tokens_to_ids(spec.end_of_turn)}


def test_the_attention_and_position_settings_are_the_families_own(built: Path) -> None:
    llama = AutoModelForCausalLM.from_pretrained(built / "llama3").config
    assert llama.num_key_value_heads < llama.num_attention_heads  # grouped-query attention
    assert llama.rope_parameters["rope_type"] == "llama3" and llama.rope_parameters["rope_theta"] == 500000.0
    qwen = AutoModelForCausalLM.from_pretrained(built / "qwen2.5")
    attention = qwen.model.layers[0].self_attn
    assert attention.q_proj.bias is not None and attention.o_proj.bias is None  # bias on q, k, v only
    assert AutoModelForCausalLM.from_pretrained(built / "mistral").config.sliding_window == 4096
    gpt2 = AutoModelForCausalLM.from_pretrained(built / "gpt2")
    assert gpt2.transformer.wpe.weight.shape[0] == 1024  # learned positions


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_chat_data_encodes_as_the_server_tokenizes_the_whole_conversation(name: str, built: Path) -> None:
    """Mistral's SentencePiece-style tokenizer marks a word start differently at a text's start than after
    `[/INST]`: a reply tokenized on its own would teach tokens the server never shows the model."""
    tokenizer = AutoTokenizer.from_pretrained(built / name)
    formats.ensure_chat_template(tokenizer)
    chat = Chat(
        (ChatMessage("user", "Tell me about the river"), ChatMessage("assistant", "The river is wide."))
    )
    example = formats.encode(chat, tokenizer, 0.0, 1024)

    messages = [{"role": m.role, "content": m.content} for m in chat.messages]
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    assert example.ids == tokenizer(whole, add_special_tokens=False)["input_ids"]
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert example.ids[: example.prompt_len] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    trained = tokenizer.decode([i for i, w in zip(example.ids, example.weights, strict=True) if w > 0])
    assert trained.startswith("The river is wide.") and families.FAMILIES[name].end_of_turn in trained


def test_a_gpt2_conv1d_adapter_is_served_exactly_as_peft_computes_it(built: Path, tmp_path: Path) -> None:
    """GPT-2's attention and MLP are Conv1D layers (weight stored in × out), which "all-linear" LoRA
    targets: the engine's stacked adapters must wrap them and give PEFT's own logits."""
    from peft import get_peft_model

    from tuneforge.inference.lora import MultiLora, read_adapter, run_rows
    from tuneforge.training.modeling import lora_config

    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(built / "gpt2"), lora_config(8, 16, 0.0))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: give the adapter an effect to compare
                param.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 70, 80, 90, 100, 32]])
    with torch.inference_mode():
        expected = peft_model.eval()(input_ids=ids).logits

    base = AutoModelForCausalLM.from_pretrained(built / "gpt2").eval()
    lora = MultiLora(base)
    slot = lora.attach(read_adapter(tmp_path / "adapter", torch.float32, torch.device("cpu")))
    with torch.inference_mode():
        served = run_rows(lora, base, [slot], input_ids=ids).logits
        plain = base(input_ids=ids).logits
    assert {path.rsplit(".", 1)[-1] for path in lora.modules} == {"c_attn", "c_proj", "c_fc"}
    assert torch.allclose(served, expected, atol=1e-4) and not torch.allclose(plain, expected, atol=1e-2)
