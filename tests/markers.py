"""Skip markers for tests of optional extras: the tests run where the extra is installed and skip elsewhere."""

from __future__ import annotations

import importlib.util

import pytest


def _installed(*packages: str) -> bool:
    return all(importlib.util.find_spec(package) is not None for package in packages)


requires_onnx = pytest.mark.skipif(not _installed("onnx", "onnxruntime"),
                                   reason="needs the onnx extra: pip install -e '.[onnx]'")
requires_onnxscript = pytest.mark.skipif(not _installed("onnx", "onnxruntime", "onnxscript"),
                                         reason="the dynamo exporter needs onnxscript: pip install onnxscript")
requires_openvino = pytest.mark.skipif(not _installed("openvino", "onnx"),
                                       reason="needs the openvino extra: pip install -e '.[openvino]'")
requires_peft = pytest.mark.skipif(not _installed("peft"), reason="needs the peft extra: pip install -e '.[peft]'")
requires_cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
requires_ray = pytest.mark.skipif(not _installed("ray"), reason="needs the ray extra: pip install -e '.[ray]'")
requires_bm25 = pytest.mark.skipif(not _installed("bm25s", "Stemmer"),
                                   reason="needs the bm25 extra: pip install -e '.[bm25]'")
requires_serve = pytest.mark.skipif(not _installed("fastapi", "uvicorn", "httpx"),
                                    reason="needs the serve extra: pip install -e '.[serve]' (and httpx)")
requires_tensorboard = pytest.mark.skipif(not _installed("tensorboard"),
                                          reason="needs tensorboard: pip install -e '.[integrations]'")
requires_wandb = pytest.mark.skipif(not _installed("wandb"), reason="needs wandb: pip install -e '.[integrations]'")
requires_codecarbon = pytest.mark.skipif(not _installed("codecarbon"),
                                         reason="needs codecarbon: pip install -e '.[integrations]'")
requires_ray_tune = pytest.mark.skipif(not _installed("ray", "ray.tune"),
                                       reason="needs ray[tune]: pip install -e '.[integrations]'")
