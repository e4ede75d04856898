"""One encoding measurement in its own process: SciFact documents per second, real tokens and peak memory.

    python benchmarks/speed/encode_worker.py --system spladekit --size distilbert --precision bf16 --docs 256

Encodes ``--docs`` SciFact documents (after the first ``--batch-size`` ones, encoded once to warm up) with
``--batch-size`` and ``--max-seq-length`` and prints ``RESULT {json}`` as its last line. bf16 is
``encode(..., precision="bf16")`` (torch.autocast) for spladekit and ``model.to(torch.bfloat16)`` for
sentence-transformers, which has no such switch. Real tokens: the documents' tokens after truncation.
"""

from __future__ import annotations

import argparse
import time

from common import PRECISIONS, SYSTEMS, documents, emit, load_model, memory_cap, peak_memory_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-cap-gb", type=float, default=None)
    options = parser.parse_args()
    memory_cap(options.memory_cap_gb)

    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
    model = load_model(options.system, options.size, options.max_seq_length, options.device)
    texts = documents(options.docs + options.batch_size)
    warmup, texts = texts[:options.batch_size], texts[options.batch_size:]
    lengths = model.tokenizer(texts, truncation=True, max_length=options.max_seq_length)["input_ids"]
    kwargs = {"batch_size": options.batch_size, "show_progress_bar": False}
    if options.precision == "bf16":
        if options.system == "spladekit":
            kwargs["precision"] = "bf16"
        else:
            model.to(torch.bfloat16)
    model.encode(warmup, **kwargs)
    cuda = options.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    embeddings = model.encode(texts, **kwargs)
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    active = embeddings.coalesce()._nnz() / len(texts)
    real_tokens = sum(len(ids) for ids in lengths)
    emit({"system": options.system, "size": options.size, "precision": options.precision, "docs": len(texts),
          "seconds": seconds, "cpu_seconds": cpu_seconds, "docs_per_second": len(texts) / seconds,
          "docs_per_cpu_second": len(texts) / cpu_seconds,
          "real_tokens_per_second": real_tokens / seconds, "active_dims": active,
          "peak_memory_mb": peak_memory_mb(options.device), "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
