"""The fused SPLADE-max head: same outputs and gradients as plain autograd, used where it applies, trains the same."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import tiny_masked_lm
from datasets import Dataset

import spladekit.modules.fused_splade_head
from spladekit import MLMTransformer, SparseEncoder, SpladePooling
from spladekit.modules.fused_splade_head import (
    _finish_max,
    _update_max,
    can_fuse,
    fused_splade_forward,
    resolve_mlm_head,
    splade_max_pool,
)
from spladekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

# A full text, a right-padded one, one with a hole in its mask, and one without any kept token.
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1],
                     [1, 1, 1, 1, 0, 0, 0],
                     [1, 0, 1, 1, 0, 1, 0],
                     [0, 0, 0, 0, 0, 0, 0]])
VOCAB, HIDDEN = 40, 6


def plain_splade_max(hidden, weight, bias, mask, activation):
    """The reference: full logits, then SpladePooling (activation, mask, max over tokens) under autograd."""
    logits = hidden @ weight.t() + (bias if bias is not None else 0)  # (B, T, V)
    pooling = SpladePooling("max", activation)
    return pooling({"token_embeddings": logits, "attention_mask": mask})["sentence_embedding"]


def random_inputs(seed: int, with_bias: bool = True):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*MASK.shape, HIDDEN, generator=generator, dtype=torch.float64)
    weight = torch.randn(VOCAB, HIDDEN, generator=generator, dtype=torch.float64)
    bias = torch.randn(VOCAB, generator=generator, dtype=torch.float64) if with_bias else None
    # No ties: the two largest kept logits of every (text, term) must differ clearly, or autograd's max would
    # split the gradient between them and the fused head (rightly) would not.
    logits = (hidden @ weight.t()).masked_fill(MASK.eq(0).unsqueeze(2), float("-inf"))  # (B, T, V)
    top2 = logits[:3].topk(2, dim=1).values  # texts with at least two kept tokens
    assert (top2[:, 0] - top2[:, 1]).abs().min() > 1e-6
    return hidden, weight, bias


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 256])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_outputs_and_gradients_equal_autograd_in_float64(activation, chunk_tokens, with_bias):
    hidden, weight, bias = random_inputs(seed=chunk_tokens, with_bias=with_bias)
    inputs = [t.clone().requires_grad_() for t in (hidden, weight, bias) if t is not None]
    reference_inputs = [t.clone().requires_grad_() for t in inputs]
    upstream = torch.randn(MASK.shape[0], VOCAB, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    fused = splade_max_pool(inputs[0], inputs[1], inputs[2] if with_bias else None, MASK, activation, chunk_tokens)
    reference = plain_splade_max(reference_inputs[0], reference_inputs[1],
                                 reference_inputs[2] if with_bias else None, MASK, activation)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-12)
    assert (reference > 0).any() and (reference == 0).any()  # both active and inactive terms are exercised
    assert torch.equal(fused[3], torch.zeros(VOCAB, dtype=torch.float64))  # no kept token: an all-zero vector

    grads = torch.autograd.grad((fused * upstream).sum(), inputs)
    reference_grads = torch.autograd.grad((reference * upstream).sum(), reference_inputs)
    for name, got, expected in zip(("hidden", "weight", "bias"), grads, reference_grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12, msg=lambda m, n=name: f"d/d{n}: {m}")


def test_sparse_weight_gradient_equals_the_dense_one():
    hidden, weight, bias = random_inputs(seed=11)
    upstream = torch.randn(MASK.shape[0], VOCAB, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = {}
    for sparse in (False, True):
        leaf = weight.clone().requires_grad_()
        (splade_max_pool(hidden, leaf, bias, MASK, sparse_weight_grad=sparse) * upstream).sum().backward()
        grads[sparse] = leaf.grad
    assert grads[True].is_sparse and not grads[False].is_sparse
    assert grads[True]._nnz() < VOCAB  # only the rows of terms active in some text
    torch.testing.assert_close(grads[True].to_dense(), grads[False], rtol=0, atol=0)


def test_tied_decoder_gets_one_dense_gradient(tiny_splade):
    """The fused head's sparse part and the embedding's dense part are summed before weight.grad is set."""
    plain = copy.deepcopy(tiny_splade)
    plain.fuse_splade_head = False
    grads = []
    for model in (tiny_splade, plain):
        model.eval()  # no dropout: both paths see the same encoder outputs
        features = model.tokenize(["a query about skin", "a longer document about skin and light"])
        model(features)["sentence_embedding"].sum().backward()
        decoder = model[0].auto_model.get_output_embeddings().weight
        assert decoder is model[0].auto_model.get_input_embeddings().weight
        grads.append(decoder.grad)
    assert not grads[0].is_sparse
    # fp32 round-off of sums summed in another order (in float64 the two agree to 1e-11)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6 * float(grads[1].abs().max()))


def test_no_grad_path_equals_the_autograd_path():
    hidden, weight, bias = random_inputs(seed=5)
    with torch.no_grad():
        inference = splade_max_pool(hidden, weight, bias, MASK, chunk_tokens=2)
    training = splade_max_pool(hidden.requires_grad_(), weight, bias, MASK, chunk_tokens=2)
    assert training.requires_grad and not inference.requires_grad
    torch.testing.assert_close(inference, training.detach(), rtol=0, atol=0)


def test_fp32_matches_plain_path():
    """fp32 goes through the oneDNN product where available; the pooled values are the plain ones."""
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 50, 16, generator=generator)
    weight = torch.randn(1000, 16, generator=generator) * 0.3
    bias = torch.randn(1000, generator=generator) - 1
    mask = torch.ones(2, 50, dtype=torch.long)
    mask[1, 30:] = 0
    torch.testing.assert_close(splade_max_pool(hidden, weight, bias, mask),
                               plain_splade_max(hidden, weight, bias, mask, "relu"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_running_max_is_exact_for_every_sign_pattern(dtype):
    """16-bit maxima run on the bit patterns as integers; they must equal the float max in every case, over one
    chunk and over a text split across two chunks."""
    values = torch.randn(40, 8, 2, 10, generator=torch.Generator().manual_seed(0))  # (V, texts, pieces, tokens)
    values[0] = -values[0].abs()  # all negative
    values[1] = values[1].abs()  # all positive
    values[2] = -0.0
    values[3] = float("-inf")
    values[4], values[4, :, 0, :3] = -values[4].abs(), -0.0  # negatives and -0.0: the max is -0.0
    values[5, :, 1] = float("-inf")  # a piece without kept tokens
    values[6] = 0.0
    values[7, :, 0], values[7, :, 1] = -values[7, :, 0].abs(), values[7, :, 1].abs()  # negative, then positive
    values = values.to(dtype)
    low_precision = dtype != torch.float32
    fill = torch.tensor(float("-inf"), dtype=dtype)
    fill = fill.view(torch.int16) if low_precision else fill
    together = [torch.full((8, 40), fill.item(), dtype=fill.dtype) for _ in range(2 if low_precision else 1)]
    _update_max(together, values.reshape(40, 8, 20), list(range(8)), first=True)
    expected = values.float().amax(dim=(2, 3)).t()  # (texts, V)
    assert torch.equal(_finish_max(together, dtype).float(), expected)
    for text in range(8):  # one text at a time, in two pieces
        pieces = [torch.full((8, 40), fill.item(), dtype=fill.dtype) for _ in range(2 if low_precision else 1)]
        _update_max(pieces, values[:, text:text + 1, 0], [text], first=True)
        _update_max(pieces, values[:, text:text + 1, 1], [text], first=False)
        assert torch.equal(_finish_max(pieces, dtype)[text].float(), expected[text])


def test_bad_arguments_are_explained():
    hidden, weight, bias = random_inputs(seed=0)
    with pytest.raises(ValueError, match="attention_mask must be"):
        splade_max_pool(hidden, weight, bias, MASK[:, :3])
    with pytest.raises(ValueError, match="chunk_tokens must be a positive integer"):
        splade_max_pool(hidden, weight, bias, MASK, chunk_tokens=0)
    with pytest.raises(ValueError, match="not a valid SpladeActivation"):
        splade_max_pool(hidden, weight, bias, MASK, activation="gelu")


# ----- architectures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_known_architectures_fuse_to_the_same_vectors(kind):
    model = tiny_masked_lm(kind).eval()
    head = resolve_mlm_head(model)
    assert head is not None and head.decoder is model.get_output_embeddings()
    mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4])
    inputs = {"input_ids": torch.randint(5, 99, (2, 10), generator=torch.Generator().manual_seed(0)),
              "attention_mask": mask}
    with torch.no_grad():
        logits = model(**inputs).logits
        expected = SpladePooling("max")({"token_embeddings": logits, "attention_mask": mask})["sentence_embedding"]
        got = splade_max_pool(head.hidden_states(inputs), head.decoder.weight, head.decoder.bias, mask)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_architecture_falls_back():
    import transformers

    class CustomMaskedLM(transformers.BertForMaskedLM):  # its own class: its forward may differ, so no fusing
        pass

    config = transformers.BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)
    assert resolve_mlm_head(CustomMaskedLM(config)) is None


# ----- the switch in SparseEncoder.forward -----------------------------------------------------------------
@pytest.fixture()
def counted(monkeypatch):
    """Counts the fused forward and the plain MLMTransformer / SpladePooling forwards."""
    calls = {"fused": 0, "mlm": 0, "pooling": 0}

    def count(key, fn):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(spladekit.modules.fused_splade_head, "fused_splade_forward",
                        count("fused", fused_splade_forward))
    monkeypatch.setattr(MLMTransformer, "forward", count("mlm", MLMTransformer.forward))
    monkeypatch.setattr(SpladePooling, "forward", count("pooling", SpladePooling.forward))
    return calls


TEXTS = ["a short query", "a much longer document about the causes of ageing and damage to the skin"]


def test_model_uses_the_fused_head_for_mlm_and_max_pooling(tiny_splade, counted):
    assert can_fuse(tiny_splade[0], tiny_splade[1])
    fused = tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False)
    assert counted == {"fused": 1, "mlm": 0, "pooling": 0}
    tiny_splade.fuse_splade_head = False
    plain = tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False)
    assert counted == {"fused": 1, "mlm": 1, "pooling": 1}
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


def test_router_document_route_is_fused(tiny_splade, counted):
    from spladekit import Router, SparseStaticEmbedding

    static = SparseStaticEmbedding(tiny_splade.tokenizer, weight=torch.rand(30522))
    model = SparseEncoder(modules=[Router.for_query_document([static], [tiny_splade[0], tiny_splade[1]])],
                          device="cpu")
    fused = model.encode_document(TEXTS, convert_to_sparse_tensor=False)
    assert counted == {"fused": 1, "mlm": 0, "pooling": 0}
    model.encode_query(TEXTS)  # the static query route has nothing to fuse
    assert counted == {"fused": 1, "mlm": 0, "pooling": 0}
    model.fuse_splade_head = False  # reaches the router's routes
    plain = model.encode_document(TEXTS, convert_to_sparse_tensor=False)
    assert counted == {"fused": 1, "mlm": 1, "pooling": 1}
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused, tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False), rtol=0, atol=0)


def test_sum_pooling_keeps_the_plain_path(tiny_splade, counted):
    model = SparseEncoder(modules=[tiny_splade[0], SpladePooling("sum")], device="cpu")
    assert not can_fuse(model[0], model[1])
    model.encode(TEXTS)
    assert counted == {"fused": 0, "mlm": 1, "pooling": 1}


def test_hooks_and_overridden_forwards_keep_the_plain_path(tiny_splade):
    class LoggingPooling(SpladePooling):
        def forward(self, features):
            return super().forward(features)

    assert not can_fuse(tiny_splade[0], LoggingPooling("max"))
    handle = tiny_splade[0].register_forward_hook(lambda module, inputs, output: None)
    assert not can_fuse(tiny_splade[0], tiny_splade[1])
    handle.remove()
    assert can_fuse(tiny_splade[0], tiny_splade[1])


def test_fused_forward_sets_the_sentence_embedding_and_dimension(tiny_splade):
    features = tiny_splade.tokenize(TEXTS)
    pooling = SpladePooling("max")
    out = fused_splade_forward(tiny_splade[0], pooling, features)
    assert out["sentence_embedding"].shape == (2, 30522)
    assert pooling.get_embedding_dimension() == 30522


# ----- training and encoding -------------------------------------------------------------------------------
def train_two_steps(model: SparseEncoder, tmp_path, **overrides) -> tuple[list[float], dict[str, torch.Tensor]]:
    data = Dataset.from_dict({"query": [f"question {i} on topic {i % 3}" for i in range(8)],
                              "document": [f"document {i} answers topic {i % 3} in detail {i * 7}" for i in range(8)]})
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2,
                                          learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to=[],
                                          seed=7, use_cpu=True, disable_tqdm=True, **overrides)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, {name: p.detach().clone() for name, p in model.named_parameters()}


def test_training_step_equals_the_plain_path(tiny_splade, tmp_path):
    # SGD: the update is the gradient times the learning rate. Adam would turn round-off-sized gradients (1e-9,
    # where the plain path's dense backward leaves noise and the fused one an exact 0) into lr-sized updates.
    before = {name: p.detach().clone() for name, p in tiny_splade.named_parameters()}
    plain_model = copy.deepcopy(tiny_splade)
    plain_model.fuse_splade_head = False
    fused_losses, fused_params = train_two_steps(tiny_splade, tmp_path / "fused", optim="sgd")
    plain_losses, plain_params = train_two_steps(plain_model, tmp_path / "plain", optim="sgd")
    assert len(fused_losses) == 2 and all(math.isfinite(loss) for loss in fused_losses)
    assert fused_losses == pytest.approx(plain_losses, rel=1e-4, abs=1e-6)
    changed = 0
    for name, value in fused_params.items():
        update, plain_update = value - before[name], plain_params[name] - before[name]
        torch.testing.assert_close(update, plain_update, rtol=1e-3, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
        changed += bool(update.abs().max() > 0)
    assert changed > 0


def test_activation_checkpointing_trains_the_same(tiny_splade, tmp_path):
    """activation_checkpointing=True recomputes each layer in the backward pass (the fused head, packed texts and
    the attention's dropout masks included): the same losses and updates as keeping the activations."""
    checkpointed = copy.deepcopy(tiny_splade)
    losses, params = train_two_steps(tiny_splade, tmp_path / "kept", optim="sgd")
    recomputed_losses, recomputed_params = train_two_steps(checkpointed, tmp_path / "checkpointed", optim="sgd",
                                                           activation_checkpointing=True)
    assert checkpointed[0].auto_model.bert.gradient_checkpointing
    assert recomputed_losses == pytest.approx(losses, rel=1e-6)
    for name, value in params.items():
        torch.testing.assert_close(recomputed_params[name], value, rtol=1e-6, atol=1e-8,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_bf16_training_runs_with_the_fused_head(tiny_splade, tmp_path, counted):
    before = {name: p.detach().clone() for name, p in tiny_splade.named_parameters()}
    losses, after = train_two_steps(tiny_splade, tmp_path, bf16=True)
    assert counted["fused"] > 0 and counted["mlm"] == 0
    assert all(math.isfinite(loss) for loss in losses)
    assert any(not torch.equal(after[name], before[name]) for name in before)


def test_bf16_encoding_is_close_to_fp32(splade_tiny_path):
    """bf16 (autocast) vectors come back as fp32 and within 3% of each vector's largest fp32 weight."""
    model = SparseEncoder(splade_tiny_path, device="cpu")
    texts = TEXTS + ["UV-A light ages the skin.", "Vitamin D deficiency is common in northern countries."]
    fp32 = model.encode(texts, convert_to_sparse_tensor=False)
    bf16 = model.encode(texts, convert_to_sparse_tensor=False, precision="bf16")
    assert bf16.dtype == torch.float32
    tolerance = 0.03 * fp32.amax(dim=1, keepdim=True)
    assert ((bf16 - fp32).abs() <= tolerance).all()
    with pytest.raises(ValueError, match="precision must be one of"):
        model.encode(texts, precision="int8")


def test_sparse_top_k_equals_dense_top_k(splade_tiny_path):
    model = SparseEncoder(splade_tiny_path, device="cpu")
    sparse = model.encode(TEXTS, max_active_dims=7)
    dense = model.encode(TEXTS, max_active_dims=7, convert_to_sparse_tensor=False)
    assert torch.equal(sparse.to_dense(), dense)
    assert (sparse.to_dense() > 0).sum(dim=1).tolist() == [7, 7]


def test_torch_compile_runs_the_fused_head_eagerly(tiny_splade):
    # torch.compile cannot trace the head's data-dependent chunk planning; it must break the graph there
    # (torch.compiler.disable) instead of failing on the first forward pass.
    expected = tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False)
    tiny_splade.compile()
    torch.testing.assert_close(tiny_splade.encode(TEXTS, convert_to_sparse_tensor=False), expected,
                               rtol=1e-5, atol=1e-6)


def test_shape_only_plan_gives_the_same_vectors_and_gradients(monkeypatch):
    """On a GPU the chunks come from the batch's shape (whole rows, padding masked) instead of the texts'
    lengths, to avoid a host synchronisation: the same numbers."""
    import spladekit.modules.fused_splade_head as fused

    results = []
    for shape_only in (False, True):
        if shape_only:
            monkeypatch.setattr(fused, "_plan_chunks", lambda mask, chunk: fused._plan_from_ends(
                [mask.shape[1]] * mask.shape[0], [-1] * mask.shape[0], chunk))
        hidden, weight, bias = (t.clone().requires_grad_() for t in random_inputs(11))
        pooled = splade_max_pool(hidden, weight, bias, MASK, chunk_tokens=3)
        pooled.sum().backward()
        results.append((pooled.detach(), hidden.grad, weight.grad, bias.grad))
    for without, with_shape in zip(*results):
        torch.testing.assert_close(with_shape, without, rtol=0, atol=1e-12)
