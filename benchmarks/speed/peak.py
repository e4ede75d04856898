"""This machine's matrix-product peak at the shapes a SPLADE step runs: the denominator of the efficiency figures.

    python benchmarks/speed/peak.py [--vocab 30522 250002] [--threads 2] [--device cpu]

``torch.mm`` of 4,096 tokens through the encoder's products at hidden 768 (768 -> 768, 768 -> 3072,
3072 -> 768) and of the vocabulary projection (V x 768 by 768 x 256), in fp32 and bf16: the median rate of
``--repeats`` timings each; the peak of a dtype is its best shape. Also per CPU second of this process, the
rate the CPU-time figures of a shared machine divide by (with one thread, the rate of one core while it runs).
Prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import emit


def rate(fn, flop: float, repeats: int, synchronize) -> tuple[float, float]:
    """(GFLOP per second of wall-clock time, GFLOP per CPU second of this process), medians of ``repeats``."""
    fn()
    synchronize()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return flop / statistics.median(times) / 1e9, flop / statistics.median(cpu_times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, nargs="+", default=[30522])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()

    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
    cuda = options.device.startswith("cuda")
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    tokens = 4096 if not cuda else 32768
    shapes = {"768->768": (tokens, 768, 768), "768->3072": (tokens, 768, 3072), "3072->768": (tokens, 3072, 768)}
    shapes.update({f"vocab {v}": (v, 768, 256 if not cuda else 4096) for v in options.vocab})
    result: dict = {"threads": torch.get_num_threads(), "device": options.device}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates, cpu_rates = {}, {}
        for label, (m, k, n) in shapes.items():
            a = torch.randn(m, k, dtype=dtype, device=options.device)
            b = torch.randn(k, n, dtype=dtype, device=options.device)
            rates[label], cpu_rates[label] = rate(lambda: torch.mm(a, b), 2 * m * k * n, options.repeats,
                                                  synchronize)
            del a, b
        result[f"{name}_gflops"] = rates
        result[f"{name}_peak_gflops"] = max(rates.values())
        result[f"{name}_gflops_per_cpu_second"] = cpu_rates
        result[f"{name}_peak_gflops_per_cpu_second"] = max(cpu_rates.values())
    emit(result)


if __name__ == "__main__":
    main()
