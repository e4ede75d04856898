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
