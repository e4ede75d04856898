"""One encoding measurement in its own process: SciFact documents per second and the process's peak memory.

    python benchmarks/fused_head/encode_worker.py --system spladekit --precision bf16 --docs 256

Encodes the first ``--docs`` SciFact documents with batch 16 and max_seq_length 256 after a short warm-up and
prints ``RESULT {json}`` as its last line. bf16 is ``encode(..., precision="bf16")`` (torch.autocast) for
spladekit and ``model.to(torch.bfloat16)`` for sentence-transformers, which has no such switch.
"""

from __future__ import annotations

import argparse
import time

from common import BATCH_SIZE, PRECISIONS, SYSTEMS, documents, emit, load_model, peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--docs", type=int, default=256)
    options = parser.parse_args()

    import torch

    model = load_model(options.system)
    texts = documents(options.docs + BATCH_SIZE)
    warmup, texts = texts[:BATCH_SIZE], texts[BATCH_SIZE:]
    kwargs = {"batch_size": BATCH_SIZE, "show_progress_bar": False}
    if options.precision == "bf16":
        if options.system == "spladekit":
            kwargs["precision"] = "bf16"
        else:
            model.to(torch.bfloat16)
    model.encode(warmup, **kwargs)
    start = time.perf_counter()
    embeddings = model.encode(texts, **kwargs)
    seconds = time.perf_counter() - start
    active = embeddings.coalesce()._nnz() / len(texts)
    emit({"system": options.system, "precision": options.precision, "docs": len(texts), "seconds": seconds,
          "docs_per_second": len(texts) / seconds, "active_dims": active, "peak_rss_mb": peak_rss_mb(),
          "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
