"""Native bf16 detection: flags parsed from cpuinfo texts of the three CPU kinds seen, the decision on this
machine checked against an independent reading of /proc/cpuinfo, CUDA capabilities, and the timing fallback."""

from __future__ import annotations

import pytest
import torch

from spladekit import hardware
from spladekit.hardware import PrecisionSupport, bf16_support, cpu_native_bf16_flags, measure_cpu_bf16, parse_cpu_flags

# Abridged /proc/cpuinfo of the machines this project ran on.
INTEL_WITHOUT_BF16 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni
"""
AMD_WITH_AVX512_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512vl avx512_bf16 avx512_vnni
"""
INTEL_WITH_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
flags\t\t: fpu avx2
"""
ARM_WITH_BF16 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm bf16 i8mm
CPU implementer\t: 0x41
"""


def test_parse_cpu_flags_reads_the_first_processor():
    assert parse_cpu_flags(INTEL_WITH_AMX) == {"fpu", "avx2", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16",
                                               "amx_tile", "amx_int8"}
    assert "bf16" in parse_cpu_flags(ARM_WITH_BF16) and "i8mm" in parse_cpu_flags(ARM_WITH_BF16)
    assert parse_cpu_flags("model name : something\n") == frozenset()


@pytest.mark.parametrize(("text", "machine", "expected"), [
    (INTEL_WITHOUT_BF16, "x86_64", set()),
    (AMD_WITH_AVX512_BF16, "x86_64", {"avx512_bf16"}),
    (INTEL_WITH_AMX, "x86_64", {"avx512_bf16", "amx_bf16"}),
    (ARM_WITH_BF16, "aarch64", {"bf16"}),
    (ARM_WITH_BF16.replace(" bf16", ""), "aarch64", set()),
    ("flags : bf16 avx2\n", "x86_64", set()),  # an Arm flag name means nothing on x86
], ids=["intel-no-bf16", "amd-avx512-bf16", "intel-amx", "arm-bf16", "arm-no-bf16", "x86-arm-name"])
def test_native_bf16_flags_per_cpu_kind(text, machine, expected):
    assert cpu_native_bf16_flags(parse_cpu_flags(text), machine) == expected


def test_cpu_verdict_on_this_machine_matches_its_flags(cpu_bf16_verdict):
    expected = cpu_bf16_verdict
    if expected is None:
        pytest.skip("no /proc/cpuinfo here: the verdict is measured instead")
    hardware._clear_caches()
    support = bf16_support("cpu")
    assert isinstance(support, PrecisionSupport)
    assert support.native is expected and bool(support) is expected
    assert ("CPU flags" in support.how) is expected  # names the flags it found, or what is missing
    assert bf16_support(torch.device("cpu")) is support  # cached: the same object for the same device


def test_cuda_capability_threshold(monkeypatch):
    # No GPU on the test machines: the driver's two answers are replaced by each GPU generation's.
    for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True), ((6, 1), False)):
        hardware._clear_caches()
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index, c=capability: c)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "a GPU")
        support = bf16_support("cuda:0")
        assert support.native is native, capability
        assert f"capability {capability[0]}.{capability[1]}" in support.how
    hardware._clear_caches()


def test_other_devices_are_not_native():
    assert bf16_support("meta").native is False


@pytest.mark.slow
def test_measured_verdict_agrees_with_the_flags(cpu_bf16_verdict):
    """The timing fallback (for machines without /proc/cpuinfo) gives the flags' answer where both exist:
    AMX / AVX512-BF16 products run several times faster than fp32, emulated ones slower."""
    expected = cpu_bf16_verdict
    if expected is None:
        pytest.skip("no /proc/cpuinfo to compare with")
    measured = measure_cpu_bf16()
    assert measured.native is expected, measured.how
    assert measured.how.startswith("measured: a 512x512 bf16 matrix product takes")
