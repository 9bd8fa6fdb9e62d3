from __future__ import annotations

import torch

from tuneforge import catalog
from tuneforge.data.records import Chat, ChatMessage, PromptCompletion
from tuneforge.settings import Settings
from tuneforge.training import base_models, formats, metrics
from tuneforge.training.batches import collate, epoch_batches, micro_batches
from tuneforge.training.byte_tokenizer import build_byte_tokenizer


def tokenizer_with_template() -> object:
    tokenizer = build_byte_tokenizer()
    formats.ensure_chat_template(tokenizer)
    return tokenizer


def test_prompt_completion_is_prompt_then_completion_then_eos_with_weights() -> None:
    tokenizer = build_byte_tokenizer()
    example = formats.encode(PromptCompletion("Q: 2+2?\nA:", " 4"), tokenizer, 0.01, 1024)

    assert tokenizer.decode(example.ids) == "Q: 2+2?\nA: 4<|endoftext|>"
    assert example.ids[-1] == tokenizer.eos_token_id
    assert example.weights == [0.01] * example.prompt_len + [1.0] * (len(example.ids) - example.prompt_len)


def test_chat_targets_are_assistant_turns_and_agree_with_the_generation_prompt() -> None:
    tokenizer = tokenizer_with_template()
    chat = Chat(
        (
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Hello!", weight=0),
            ChatMessage("user", "Name?"),
            ChatMessage("assistant", "Tuna."),
        )
    )
    example = formats.encode(chat, tokenizer, 0.01, 1024)

    whole = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in chat.messages], tokenize=False
    )
    assert tokenizer.decode(example.ids) == whole
    trained = tokenizer.decode([i for i, w in zip(example.ids, example.weights, strict=True) if w > 0])
    assert trained == "Tuna.<|endoftext|>\n"  # the weight-0 turn is not learnt
    prompt = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in chat.messages[:4]],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert tokenizer.decode(example.ids[: example.prompt_len]) == prompt


def test_prompt_loss_weight_zero_gives_prompt_tokens_zero_gradient(settings: Settings) -> None:
    ref = catalog.resolve("tiny", settings)
    model, tokenizer = base_models.load_model(ref, settings), base_models.load_tokenizer(ref, settings)
    for plw, prompt_gets_gradient in [(0.0, False), (0.01, True)]:
        example = formats.encode(PromptCompletion("The sky is", " blue"), tokenizer, plw, 1024)
        batch = collate([example], tokenizer.pad_token_id)
        logits = model(input_ids=batch.inputs).logits
        logits.retain_grad()
        loss = metrics.weighted_loss(metrics.token_losses(logits, batch.labels), batch.weights, 1.0)
        loss.backward()
        grad_norm = logits.grad[0].norm(dim=-1)  # one value per position, predicting labels[position]
        on_prompt = grad_norm[: example.prompt_len - 1]
        assert bool((on_prompt > 0).all()) is prompt_gets_gradient
        assert bool((grad_norm[example.prompt_len - 1 :] > 0).all())


def test_epoch_batches_are_a_pure_function_of_seed_and_epoch_and_cover_every_example() -> None:
    lengths = [(i * 37) % 101 + 2 for i in range(500)]
    first = epoch_batches(lengths, 16, seed=3, epoch=1)

    assert first == epoch_batches(lengths, 16, seed=3, epoch=1)
    assert first != epoch_batches(lengths, 16, seed=3, epoch=2)
    assert sorted(i for batch in first for i in batch) == list(range(500))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in first)
    assert padded < 1.1 * sum(lengths)  # grouping by length leaves under 10% padding


def test_micro_batches_split_by_token_budget_and_keep_every_real_token() -> None:
    tokenizer = build_byte_tokenizer()
    examples = [formats.encode(PromptCompletion("x" * n, " y"), tokenizer, 1.0, 1024) for n in range(1, 60)]
    batches = micro_batches(examples, tokenizer.pad_token_id, budget=256)

    assert len(batches) > 1 and all(b.inputs.numel() <= 256 for b in batches)
    assert sum(b.real_tokens for b in batches) == sum(len(e.ids) for e in examples)
    assert sum(float(b.weights.sum()) for b in batches) == sum(sum(e.weights[1:]) for e in examples)
    assert all(not bool(b.weights[b.inputs == tokenizer.pad_token_id].any()) for b in batches)
    assert torch.is_tensor(batches[0].target)
