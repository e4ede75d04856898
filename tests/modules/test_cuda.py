"""The training kernels on CUDA tensors: the same numbers as on the CPU, and no host synchronisation where the
docstrings promise none. Skipped without a GPU."""

from __future__ import annotations

import copy

import torch

from markers import requires_cuda
from spladekit.modules.fused_splade_head import splade_max_pool
from spladekit.modules.lean_attention import lean_attention_forward
from spladekit.modules.lean_dropout import lean_dropout
from spladekit.modules.mlm_head import resolve_mlm_head
from spladekit.modules.packing import pack_batch

pytestmark = requires_cuda


def head_inputs(device):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 9, 16, generator=generator)
    weight = torch.randn(50, 16, generator=generator)
    bias = torch.randn(50, generator=generator)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])
    return [t.to(device) for t in (hidden, weight, bias, mask)]


def test_fused_head_forward_runs_without_host_synchronisation():
    hidden, weight, bias, mask = head_inputs("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            pooled = splade_max_pool(hidden, weight, bias, mask)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = splade_max_pool(*head_inputs("cpu"))
    torch.testing.assert_close(pooled.cpu(), expected, rtol=1e-5, atol=1e-5)


def test_fused_head_gradients_equal_the_cpu_ones():
    grads = []
    for device in ("cpu", "cuda"):
        hidden, weight, bias, mask = head_inputs(device)
        hidden.requires_grad_()
        weight.requires_grad_()
        splade_max_pool(hidden, weight, bias, mask).sum().backward()
        grads.append((hidden.grad.cpu(), weight.grad.cpu()))
    for cpu, cuda in zip(*grads):
        torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-5)


def test_cuda_tensors_take_the_fused_kernels_of_torch():
    """Lean attention and dropout hand CUDA tensors to sdpa and F.dropout; nothing is packed."""
    query, key, value = (torch.randn(2, 2, 5, 4, device="cuda", requires_grad=True) for _ in range(3))

    class Attention(torch.nn.Module):
        is_causal = False

    output, _ = lean_attention_forward(Attention(), query, key, value, None, dropout=0.1)
    assert "LeanAttention" not in type(output.grad_fn).__name__
    x = torch.randn(4, 8, device="cuda", requires_grad=True)
    assert "LeanDropout" not in type(lean_dropout(x, 0.1).grad_fn).__name__
    ids = torch.tensor([[1, 2, 3], [1, 2, 0]], device="cuda")
    assert pack_batch({"input_ids": ids, "attention_mask": ids.ne(0).long()}, 0, 0) is None


def test_training_step_on_cuda_matches_the_cpu(tiny_splade):
    cuda_model = copy.deepcopy(tiny_splade).to("cuda")
    texts = ["a query about skin", "a longer document about skin and light"]
    outputs = []
    for model in (tiny_splade, cuda_model):
        model.eval()
        features = {k: v.to(model.device) for k, v in model.tokenize(texts).items()}
        embedding = model(features)["sentence_embedding"]
        embedding.sum().backward()
        head = resolve_mlm_head(model[0].auto_model)
        outputs.append((embedding.detach().cpu(), head.decoder.weight.grad.cpu()))
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs[1][1], outputs[0][1], rtol=1e-3, atol=1e-3)
