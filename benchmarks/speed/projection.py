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


def measure(precision: str, hidden, mask, weight, bias) -> dict[str, float]:
    """The figures of one precision ("fp32" or "bf16") for the given head inputs."""
    import torch

    from spladekit.modules.fused_splade_head import _project, default_chunk_tokens, splade_max_pool

    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    size, tokens = 4096, int(mask.sum())
    vocab, hidden_size = weight.shape
    projection_flop = 2 * tokens * hidden_size * vocab
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    peak = 2 * size**3 / best_seconds(lambda: torch.mm(a, b), repeats=3) / 1e9
    packed, weight_c = hidden[mask.bool()].to(dtype), weight.detach().to(dtype)  # (N, H), (V, H)

    chunk = default_chunk_tokens(vocab, dtype)

    def project() -> None:
        for start in range(0, tokens, chunk):
            _project(weight_c, packed[start:start + chunk])  # (V, c)

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            splade_max_pool(hidden, weight, bias, mask)

    def forward_backward() -> None:
        h = hidden.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = splade_max_pool(h, weight, bias, mask)
        out.sum().backward()

    projection = projection_flop / best_seconds(project) / 1e9
    forward_seconds = best_seconds(forward)
    return {f"{precision}_mm_peak_gflops": peak, f"{precision}_projection_gflops": projection,
            f"{precision}_projection_fraction_of_peak": projection / peak,
            f"{precision}_head_forward_seconds": forward_seconds,
            f"{precision}_head_forward_backward_seconds": best_seconds(forward_backward, repeats=3),
            f"{precision}_head_forward_gflops": projection_flop / forward_seconds / 1e9}


def main() -> None:
    import torch

    from spladekit.modules.fused_splade_head import resolve_mlm_head

    torch.manual_seed(0)
    model = load_model("spladekit")
    head = resolve_mlm_head(model[0].auto_model)
    features = model.tokenize(documents(BATCH_SIZE))
    with torch.no_grad():
        hidden = head.hidden_states(model[0].model_inputs(features))  # (B, T, H)
    mask = features["attention_mask"]
    weight = head.decoder.weight.detach().clone().requires_grad_()
    bias = head.decoder.bias.detach().clone().requires_grad_()
    result: dict[str, float] = {"tokens": int(mask.sum()), "hidden": weight.shape[1], "vocab": weight.shape[0]}
    for precision in ("fp32", "bf16"):
        result.update(measure(precision, hidden, mask, weight, bias))
    result["threads"] = torch.get_num_threads()
    emit(result)


if __name__ == "__main__":
    main()
