"""Encode SciFact documents with a pool of worker processes and compare with one process.

    python examples/launch/encode_multi_process.py [--devices cpu cpu] [--num-texts 1000] [--batch-size 32]

By default one worker per GPU, or up to 4 CPU workers when there is no GPU. Prints the seconds each way and
whether the vectors are identical.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from spladekit import SparseEncoder
from spladekit.data import load_beir_corpus

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "assets/models/splade-tiny"))
    parser.add_argument("--beir", default=str(ROOT / "assets/data/scifact"))
    parser.add_argument("--devices", nargs="+", default=None, help="e.g. cuda:0 cuda:1, or cpu cpu")
    parser.add_argument("--num-texts", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    options = parser.parse_args()

    model = SparseEncoder(options.model)
    texts = list(load_beir_corpus(options.beir).values())[:options.num_texts]
    start = time.perf_counter()
    single = model.encode_document(texts, batch_size=options.batch_size)
    single_seconds = time.perf_counter() - start

    start = time.perf_counter()
    pool = model.start_multi_process_pool(options.devices)
    model.encode_document(["warm-up"], pool=pool)  # the workers have started and loaded the model
    startup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pooled = model.encode_document(texts, batch_size=options.batch_size, pool=pool)
    pool_seconds = time.perf_counter() - start
    model.stop_multi_process_pool(pool)

    single, pooled = single.coalesce().cpu(), pooled.coalesce()
    identical = torch.equal(single.indices(), pooled.indices()) and torch.equal(single.values(), pooled.values())
    print(f"{len(texts)} texts, devices {pool.devices}: one process {single_seconds:.1f} s, pool {pool_seconds:.1f} s "
          f"(+ {startup_seconds:.1f} s to start it); identical vectors: {identical}")


if __name__ == "__main__":
    main()
