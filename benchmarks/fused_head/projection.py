"""How close the fused head's vocabulary projection gets to this machine's matrix-product peak.

    python benchmarks/fused_head/projection.py

Measures, in one process: the peak of a large square ``torch.mm`` (fp32 and bf16), and for splade-tiny's
sizes (16 texts x 256 tokens, hidden 128, vocabulary 30,522) the rate of the vocabulary projection alone
(the chunked products the fused head runs), of the fused head's forward pass (projection + max over tokens)
and of its forward + backward pass; prints ``RESULT {json}``. Each figure is the best of several timings,
the least disturbed by other processes. The head runs on splade-tiny's own decoder and on its hidden states
for 16 SciFact documents, so the backward pass sees the real number of active terms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from common import BATCH_SIZE, documents, emit, load_model

REPEATS = 5


def best_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import torch

    from spladekit.modules.fused_splade_head import DEFAULT_CHUNK_TOKENS, _project, resolve_mlm_head, splade_max_pool

    torch.manual_seed(0)
    model = load_model("spladekit")
    head = resolve_mlm_head(model[0].auto_model)
    features = model.tokenize(documents(BATCH_SIZE))
    with torch.no_grad():
        hidden = head.hidden_states(model[0].model_inputs(features))  # (B, T, H)
    mask = features["attention_mask"]
    weight = head.decoder.weight.detach().clone().requires_grad_()
    bias = head.decoder.bias.detach().clone().requires_grad_()
    vocab, hidden_size = weight.shape
    tokens, size = int(mask.sum()), 4096
    result: dict[str, float] = {"tokens": tokens, "hidden": hidden_size, "vocab": vocab}
    projection_flop = 2 * tokens * hidden_size * vocab
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        peak = 2 * size**3 / best_seconds(lambda: torch.mm(a, b), repeats=3) / 1e9
        packed, weight_c = hidden[mask.bool()].to(dtype), weight.detach().to(dtype)  # (N, H), (V, H)

        def project() -> None:
            for start in range(0, tokens, DEFAULT_CHUNK_TOKENS):
                _project(weight_c, packed[start:start + DEFAULT_CHUNK_TOKENS])  # (V, c)

        def forward() -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                splade_max_pool(hidden, weight, bias, mask)

        def forward_backward() -> None:
            h = hidden.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                out = splade_max_pool(h, weight, bias, mask)
            out.sum().backward()

        projection = projection_flop / best_seconds(project) / 1e9
        result[f"{name}_mm_peak_gflops"] = peak
        result[f"{name}_projection_gflops"] = projection
        result[f"{name}_projection_fraction_of_peak"] = projection / peak
        result[f"{name}_head_forward_seconds"] = best_seconds(forward)
        result[f"{name}_head_forward_backward_seconds"] = best_seconds(forward_backward, repeats=3)
        result[f"{name}_head_forward_gflops"] = projection_flop / result[f"{name}_head_forward_seconds"] / 1e9
    result["threads"] = torch.get_num_threads()
    emit(result)


if __name__ == "__main__":
    main()
