"""What the hardware computes natively: whether bf16 arithmetic is fast on a device, decided once per process.

bf16 mixed precision is worth it only where the hardware has bf16 instructions. On an x86 CPU without them
oneDNN emulates bf16 products through fp32 plus conversions, and training runs *slower* than in fp32 (splade-tiny,
batch 16 x 256 tokens: 10.9 pairs/s in bf16 against 18.6 in fp32 on an Intel Xeon without AVX512-BF16). So:

* CPU: native where the CPU reports bf16 instructions: ``avx512_bf16`` or ``amx_bf16`` on x86 (Linux
  ``/proc/cpuinfo`` flags), ``bf16`` on Arm (its ``Features`` line). Where the flags cannot be read (macOS,
  Windows), a bf16 and an fp32 matrix product are timed once, interleaved, and bf16 counts as native when it
  is at least as fast.
* CUDA: compute capability 8.0 or newer (Ampere on); older GPUs emulate bf16.
* XPU (Intel GPUs): native, as torch reports it.
* Anything else (MPS, ...): not native.

Every answer is cached for the life of the process: the flags are read (or the products timed) once.
"""

from __future__ import annotations

import functools
import platform
import time
from dataclasses import dataclass

import torch

__all__ = ["PrecisionSupport", "bf16_support", "cpu_flags", "cpu_native_bf16_flags", "measure_cpu_bf16",
           "parse_cpu_flags"]

# x86: AVX512-BF16 (dot products and conversions) or AMX-BF16 (tile matrix products); Arm: the BF16 extension.
_X86_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_ARM_BF16_FLAGS = frozenset({"bf16"})
# CUDA devices compute bf16 natively from Ampere (compute capability 8.0) on.
_CUDA_BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class PrecisionSupport:
    """Whether a device computes a dtype natively, and how that was decided (for logs and error messages)."""

    native: bool
    how: str

    def __bool__(self) -> bool:
        return self.native


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """This CPU's feature flags from ``/proc/cpuinfo``, or None where there is no such file (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf8", errors="replace") as f:
            flags = parse_cpu_flags(f.read())
    except OSError:
        return None
    return flags or None


def cpu_native_bf16_flags(flags: frozenset[str], machine: str | None = None) -> frozenset[str]:
    """The flags among ``flags`` that mean native bf16 on an ``machine`` CPU (``platform.machine()`` by default)."""
    arch = (machine or platform.machine()).lower()
    wanted = _ARM_BF16_FLAGS if arch.startswith(("arm", "aarch64")) else _X86_BF16_FLAGS
    return flags & wanted


def _time_matmul(dtype: torch.dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(dtype)
    b = torch.randn(size, size, generator=torch.Generator().manual_seed(1)).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return best


def measure_cpu_bf16(size: int = 512, rounds: int = 3, repeats: int = 5) -> PrecisionSupport:
    """Times a (size x size) bf16 and fp32 matrix product on the CPU, alternating ``rounds`` times (best of
    ``repeats`` each, so that other processes' load cancels out); native if bf16 is at least as fast."""
    fp32 = bf16 = float("inf")
    for _ in range(rounds):
        fp32 = min(fp32, _time_matmul(torch.float32, size, repeats))
        bf16 = min(bf16, _time_matmul(torch.bfloat16, size, repeats))
    return PrecisionSupport(bf16 <= fp32, f"measured: a {size}x{size} bf16 matrix product takes {bf16 / fp32:.2f}x "
                                          "the fp32 time")


@functools.cache
def _cpu_bf16() -> PrecisionSupport:
    flags = cpu_flags()
    if flags is None:
        return measure_cpu_bf16()
    found = cpu_native_bf16_flags(flags)
    if found:
        return PrecisionSupport(True, f"CPU flags {', '.join(sorted(found))}")
    wanted = _ARM_BF16_FLAGS if platform.machine().lower().startswith(("arm", "aarch64")) else _X86_BF16_FLAGS
    return PrecisionSupport(False, f"the CPU lacks {' and '.join(sorted(wanted))} (bf16 would be emulated)")


@functools.cache
def _accelerator_bf16(kind: str, index: int) -> PrecisionSupport:
    if kind == "cuda":
        capability = torch.cuda.get_device_capability(index)
        name = torch.cuda.get_device_name(index)
        native = capability >= _CUDA_BF16_CAPABILITY
        return PrecisionSupport(native, f"{name}: CUDA capability {capability[0]}.{capability[1]} "
                                        f"({'>=' if native else '<'} 8.0)")
    if kind == "xpu":
        native = bool(torch.xpu.is_bf16_supported())
        return PrecisionSupport(native, f"torch.xpu.is_bf16_supported() is {native}")
    return PrecisionSupport(False, f"no native bf16 known for {kind} devices")


def bf16_support(device: str | torch.device = "cpu") -> PrecisionSupport:
    """Whether ``device`` computes bf16 natively (see the module docstring); truthy when it does."""
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_bf16()
    index = device.index
    if index is None:
        index = torch.cuda.current_device() if device.type == "cuda" else 0
    return _accelerator_bf16(device.type, index)


def _clear_caches() -> None:
    """For tests: forget every cached answer."""
    for cached in (cpu_flags, _cpu_bf16, _accelerator_bf16):
        cached.cache_clear()

