"""SciFact test nDCG@10 of splade-tiny run through PyTorch, ONNX Runtime (fp32 / dynamic int8) or OpenVINO.

    python benchmarks/onnx/ndcg.py onnx-int8 [--output ndcg_onnx_int8.json]
    python benchmarks/onnx/ndcg.py torch | onnx | onnx-int8 | openvino

Saves the bundled splade-tiny (max_seq_length 256) with the graphs the variant needs into a temporary folder,
loads it with that backend, and evaluates it with ``SparseInformationRetrievalEvaluator`` on the 300 SciFact
test queries against the 5,183 documents (batch 32; the whole corpus is encoded, several minutes on a 2-core
CPU). Prints the metrics and ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "models" / "splade-tiny"
SCIFACT = ROOT / "assets" / "data" / "scifact"
MAX_SEQ_LENGTH = 256
VARIANTS = {"torch": ("torch", None), "onnx": ("onnx", "model"), "onnx-int8": ("onnx", "model_int8"),
            "openvino": ("openvino", "model")}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--output", default=None)
    options = parser.parse_args()

    from spladekit import SparseEncoder, export_onnx, export_openvino, quantize_onnx
    from spladekit.data import load_beir
    from spladekit.evaluation import SparseInformationRetrievalEvaluator

    backend, file_name = VARIANTS[options.variant]
    corpus, queries, relevant = load_beir(str(SCIFACT), split="test")
    with tempfile.TemporaryDirectory(prefix="spladekit-ndcg-") as folder:
        source = SparseEncoder(str(MODEL), device="cpu")
        source.max_seq_length = MAX_SEQ_LENGTH
        source.save(folder)
        if backend == "onnx":
            export_onnx(source, folder)
            if file_name == "model_int8":
                quantize_onnx(folder)
        elif backend == "openvino":
            export_openvino(source, folder)
        model = SparseEncoder(folder, device="cpu", backend=backend,
                              model_kwargs={"file_name": file_name} if file_name else None)
        model.max_seq_length = MAX_SEQ_LENGTH
        evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact", batch_size=32,
                                                        show_progress_bar=False, write_csv=False)
        start = time.perf_counter()
        metrics = evaluator(model)
        seconds = time.perf_counter() - start
    prefix = "scifact_dot_"
    result = {"variant": options.variant, "seconds": seconds,
              **{key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)},
              **{key: value for key, value in metrics.items() if "active_dims" in key}}
    print(f"{options.variant}: nDCG@10 {result['ndcg@10']:.4f} in {seconds:.0f} s", flush=True)
    if options.output:
        with open(options.output, "w", encoding="utf8") as f:
            json.dump(result, f, indent=2)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
