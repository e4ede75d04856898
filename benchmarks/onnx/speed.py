"""Encoding speed of splade-tiny on SciFact documents: PyTorch, torch.compile, ONNX Runtime (fp32 / int8), OpenVINO.

    python benchmarks/onnx/speed.py [--documents 500] [--repeats 2] [--output speed.json]

Saves the bundled splade-tiny (max_seq_length 256) with its ONNX, int8 and OpenVINO graphs into a temporary
folder, then encodes the first N SciFact documents (batch 32) with each variant: a warm-up call on 32
documents first (it includes torch.compile's compilation, reported separately), then ``--repeats`` timed
passes, of which the fastest counts. The fp32 variants are checked against PyTorch (largest absolute
difference of the vectors). Prints one line per variant and ``RESULT {json}``.
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
BATCH_SIZE = 32
MAX_SEQ_LENGTH = 256

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "src"))


def _load(folder: str, backend: str = "torch", **model_kwargs):
    from spladekit import SparseEncoder

    model = SparseEncoder(folder, device="cpu", backend=backend, model_kwargs=model_kwargs or None)
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def _variants(folder: str):
    """(name, model factory); each factory loads a fresh model."""
    def compiled_backbone():
        model = _load(folder)
        model[0].auto_model.bert.compile(dynamic=True)  # what the fused SPLADE head runs before the projection
        return model

    def compiled_plain():
        model = _load(folder)
        model.fuse_splade_head = False  # the fused head's oneDNN call does not trace; compile the plain path
        model.compile(dynamic=True)
        return model

    return [
        ("torch (fused head)", lambda: _load(folder)),
        ("torch + compile(backbone)", compiled_backbone),
        ("torch + compile(plain path)", compiled_plain),
        ("onnxruntime fp32", lambda: _load(folder, "onnx")),
        ("onnxruntime int8", lambda: _load(folder, "onnx", file_name="model_int8")),
        ("openvino fp32", lambda: _load(folder, "openvino")),
        ("openvino bf16 hint", lambda: _load(folder, "openvino", ov_config={"INFERENCE_PRECISION_HINT": "bf16"})),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="run only the variants whose name starts so")
    parser.add_argument("--output", default=None)
    options = parser.parse_args()

    import torch

    from spladekit import export_onnx, export_openvino, quantize_onnx
    from spladekit.data import load_beir_corpus

    texts = list(load_beir_corpus(str(SCIFACT)).values())[:options.documents]
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="spladekit-speed-") as folder:
        source = _load(str(MODEL))
        source.save(folder)
        export_onnx(source, folder)
        quantize_onnx(folder)
        export_openvino(source, folder)
        reference = source.encode_document(texts, batch_size=BATCH_SIZE, convert_to_sparse_tensor=False)
        del source
        models = {}
        for name, factory in _variants(folder):
            if options.only and not any(name.startswith(prefix) for prefix in options.only):
                continue
            models[name] = factory()
            start = time.perf_counter()
            models[name].encode_document(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)
            result[name] = {"warm_up_seconds": time.perf_counter() - start, "all_seconds": []}
        # Round-robin passes, so that a change in the load of a shared machine affects every variant alike.
        for _ in range(options.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                vectors = model.encode_document(texts, batch_size=BATCH_SIZE, convert_to_sparse_tensor=False)
                result[name]["all_seconds"].append(time.perf_counter() - start)
                result[name]["max_abs_difference"] = float((vectors - reference).abs().max())
                result[name]["active_dims"] = float((vectors != 0).sum(dim=1).float().mean())
        for name, entry in result.items():
            entry["seconds"] = min(entry["all_seconds"])
            entry["documents_per_second"] = len(texts) / entry["seconds"]
            print(name, json.dumps(entry), flush=True)
    base = result.get("torch (fused head)")
    if base:
        for entry in result.values():
            entry["speed_vs_torch"] = base["seconds"] / entry["seconds"]
    result["setup"] = {"documents": len(texts), "batch_size": BATCH_SIZE, "max_seq_length": MAX_SEQ_LENGTH,
                       "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                       "load_average": os.getloadavg()}
    if options.output:
        with open(options.output, "w", encoding="utf8") as f:
            json.dump(result, f, indent=2)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
