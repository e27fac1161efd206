"""The machine named in the headers of `make bench` and `make loadtest`: hosts that /proc/cpuinfo's "model name"
alone confuses, and the cpuinfo that has no model name or no file at all."""

from __future__ import annotations

import pytest

from bench.machine import cpu_description
from tests.conftest import names_of

# The host of 2026-12-05 (a KVM guest), its first two processors as /proc/cpuinfo gives them, flags in full.
ZEN2 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 23
model		: 49
model name	: AMD EPYC
stepping	: 0
microcode	: 0x1000065
cpu MHz		: 2245.780
cache size	: 512 KB
siblings	: 2
cpu cores	: 2
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht \
syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid \
tsc_known_freq pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c \
rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd ibrs ibpb stibp \
vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 clzero \
xsaveerptr wbnoinvd arat umip rdpid
bugs		: sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb srso ibpb_no_ret
bogomips	: 4491.56
power management:

processor	: 1
vendor_id	: AuthenticAMD
cpu family	: 23
model		: 49
model name	: AMD EPYC
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep avx avx2
power management:

"""

# The Zen 4 host (Genoa as its guest sees it): the same model name, AVX-512 and its VNNI, no VEX AVX-VNNI.
ZEN4 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512ifma avx512cd \
avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg \
avx512_vpopcntdq hypervisor
"""

# The Intel host of 2026-12-04: family 6, model 167 as the KVM guest reports it, both VNNIs and AMX.
INTEL = """processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 167
model name	: Intel(R) Xeon(R) Processor
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512cd avx512bw \
avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vbmi2 gfni vaes avx512_vnni avx512_bitalg avx512_vpopcntdq \
amx_bf16 avx512_fp16 amx_tile amx_int8 hypervisor
"""

# Graviton 2 (Neoverse N1): no "model name", the CPU named by implementer and part, its extensions as Features.
_GRAVITON2_CORE = """BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1
"""
GRAVITON2 = f"processor\t: 0\n{_GRAVITON2_CORE}\nprocessor\t: 1\n{_GRAVITON2_CORE}\n"


@pytest.mark.parametrize(
    "cpuinfo, description",
    [
        (ZEN2, "AMD EPYC (family 23, model 49; AVX2, no AVX-512), 2 vCPU"),
        (ZEN4, "AMD EPYC (family 25, model 17; AVX-512, AVX-512 VNNI), 2 vCPU"),
        (INTEL, "Intel(R) Xeon(R) Processor (family 6, model 167; AVX-512, AVX-512 VNNI, AMX), 2 vCPU"),
    ],
    ids=["zen2", "zen4", "intel"],
)
def test_hosts_of_the_same_model_name_are_told_apart_by_family_model_and_extensions(cpuinfo, description):
    assert cpu_description(cpuinfo, 2, "x86_64") == description


AVX512 = "avx512f avx512dq avx512bw avx512vl"  # what MLAS takes for AVX-512 (Skylake-SP on)


@pytest.mark.parametrize(
    "flags, extensions",
    [
        ("avx avx2 avx_vnni", "AVX2, AVX-VNNI, no AVX-512"),  # Alder Lake: int8 dot products without AVX-512
        ("avx", "no AVX2, no AVX-512"),
        ("avx avx2 avx512f", "AVX-512"),
        ("avx avx2 avx512f avx_vnni", "AVX-512, AVX-VNNI"),  # AVX-512F alone: MLAS keeps its AVX-VNNI kernel
        ("avx avx2 avx512f avx512_vnni", "AVX-512"),  # and its AVX-512 VNNI kernel wants BW, DQ and VL too
        # A virtual CPU hiding AVX-512 VNNI: beside AVX-512 (F, BW, DQ, VL) MLAS's int8 kernel is its AVX-512 one
        (f"avx avx2 {AVX512} avx_vnni", "AVX-512"),
        (f"avx avx2 {AVX512} avx512_vnni avx_vnni", "AVX-512, AVX-512 VNNI"),
        (f"avx avx2 {AVX512} avx512_vnni amx_bf16 amx_tile", "AVX-512, AVX-512 VNNI"),  # no AMX-INT8: no int8 tiles
        (f"avx avx2 {AVX512} avx512_vnni amx_tile amx_int8", "AVX-512, AVX-512 VNNI, AMX"),
    ],
)
def test_each_extension_the_kernels_dispatch_on_is_named_and_avx512_said_missing(flags, extensions):
    cpuinfo = f"vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 151\nmodel name\t: Core\nflags\t\t: {flags}\n"
    assert cpu_description(cpuinfo, 4, "x86_64") == f"Core (family 6, model 151; {extensions}), 4 vCPU"


def test_the_first_processor_is_described_not_a_later_one():
    first, rest = ZEN2.split("\n\n", 1)
    later = rest.replace("model name\t: AMD EPYC", "model name\t: later").replace("avx2", "avx2 avx512f")
    assert cpu_description(f"{first}\n\n{later}", 2, "x86_64").startswith("AMD EPYC (family 23, model 49; AVX2,")


def test_aarch64_is_named_by_its_architecture_implementer_and_part():
    assert cpu_description(GRAVITON2, 2, "aarch64") == "aarch64 (implementer 0x41, part 0xd0c; dot product), 2 vCPU"
    graviton3 = GRAVITON2.replace("0xd0c", "0xd40").replace(" ssbs", " ssbs sve i8mm")
    assert cpu_description(graviton3, 64, "aarch64") == (
        "aarch64 (implementer 0x41, part 0xd40; dot product, I8MM, SVE), 64 vCPU"
    )
    cortex_a72 = "processor\t: 0\nFeatures\t: fp asimd crc32 cpuid\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n"
    assert cpu_description(cortex_a72, 4, "aarch64") == (  # no int8 dot product: said outright, as "no AVX-512" is
        "aarch64 (implementer 0x41, part 0xd08; no dot product), 4 vCPU"
    )


@pytest.mark.parametrize(
    "cpuinfo, cpus, arch, description",
    [
        (None, 2, "x86_64", "x86_64, 2 vCPU"),  # no /proc/cpuinfo (macOS, a sandbox)
        ("", None, "", "unknown CPU, vCPU count unknown"),  # os.cpu_count() and platform.machine() know nothing
        ("garbage\n\x00\n::\n", 2, "x86_64", "x86_64, 2 vCPU"),
        ("processor\t: 0\ncpu\t\t: POWER9 (raw)\n", 8, "ppc64le", "ppc64le, 8 vCPU"),  # neither x86 nor ARM
        # x86 without a flags line: the extensions are unknown, never said missing
        (ZEN2.split("flags")[0], 2, "x86_64", "AMD EPYC (family 23, model 49), 2 vCPU"),
        # x86 flags without family, model or name (a trimmed guest's): the extensions alone, after the architecture
        ("flags\t\t: fpu avx avx2\n", 2, "x86_64", "x86_64 (AVX2, no AVX-512), 2 vCPU"),
        # ARM without a Features line: implementer and part, the extensions unknown, never said missing
        (
            "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n",
            2,
            "aarch64",
            "aarch64 (implementer 0x41, part 0xd0c), 2 vCPU",
        ),
        # a field with no value (a guest's blank model) is left out, not printed as "model " with nothing after it
        (
            "cpu family\t: 6\nmodel\t\t:\nmodel name\t: Core\nflags\t\t: avx avx2\n",
            2,
            "x86_64",
            "Core (family 6; AVX2, no AVX-512), 2 vCPU",
        ),
        # a blank model name (a guest's) names the architecture, as a missing one does, not "unknown CPU"
        ("model name\t:\nflags\t\t: avx avx2\n", 2, "x86_64", "x86_64 (AVX2, no AVX-512), 2 vCPU"),
        # blank lines before the first processor's block do not end it before it begins
        ("\n\nmodel name\t: Core\nflags\t\t: avx avx2\n", 2, "x86_64", "Core (AVX2, no AVX-512), 2 vCPU"),
        # a colon inside a value: the field is split at its first one
        (
            "model name\t: Vendor: Model 9\nflags\t\t: avx avx2\n",
            2,
            "x86_64",
            "Vendor: Model 9 (AVX2, no AVX-512), 2 vCPU",
        ),
    ],
)
def test_cpuinfo_that_is_missing_or_unexpected_still_names_the_machine(cpuinfo, cpus, arch, description):
    assert cpu_description(cpuinfo, cpus, arch) == description


def test_both_headers_describe_the_machine_from_its_cpuinfo(monkeypatch, tmp_path):
    import platform

    import onnxruntime
    import torch

    import bench.__main__ as bench_main
    from bench import machine
    from bench.loadtest import machine_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(INTEL)
    monkeypatch.setattr(machine, "CPUINFO", cpuinfo)
    monkeypatch.setattr(machine, "os", names_of(machine.os, cpu_count=lambda: 6))
    monkeypatch.setattr(machine, "platform", names_of(machine.platform, machine=lambda: "aarch64"))
    intel = "Intel(R) Xeon(R) Processor (family 6, model 167; AVX-512, AVX-512 VNNI, AMX)"
    # os.cpu_count() counts logical CPUs: "cores" said twice the physical ones on a host with hyper-threads.
    assert bench_main.machine().startswith(f"{intel}, 6 vCPU, Python ")
    assert machine_description().startswith(f"{intel}, 6 vCPU, Python ")
    # then the software the figures depend on, and the threads every side of the bench was given
    monkeypatch.setattr(bench_main, "THREADS", 3)  # the served session's count, which a cgroup quota may lower
    assert bench_main.machine() == (
        f"{intel}, 6 vCPU, Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, 3 threads"
    )

    cpuinfo.unlink()  # unreadable: the header still names what it can
    assert bench_main.machine().startswith("aarch64, 6 vCPU, Python ")
    assert machine_description().startswith("aarch64, 6 vCPU, Python ")


def test_the_header_reads_avx512_as_the_served_sessions_int8_rule_does(inference):
    """The artifact cannot import the bench: each holds MLAS's AVX-512 "core" set, and one changed alone would have the
    header name a kernel the served session does not take the CPU for (or the reverse)."""
    from bench.machine import AVX512_CORE

    assert inference.AVX512_CORE_CPU_FLAGS == AVX512_CORE


def test_a_cpuinfo_that_cannot_be_read_or_decoded_still_names_the_machine(monkeypatch, tmp_path):
    """The header is made after the whole run: a /proc/cpuinfo that raised (denied, or not UTF-8) lost the table."""
    from bench import machine

    monkeypatch.setattr(machine, "os", names_of(machine.os, cpu_count=lambda: 6))
    monkeypatch.setattr(machine, "platform", names_of(machine.platform, machine=lambda: "aarch64"))
    monkeypatch.setattr(machine, "CPUINFO", tmp_path)  # a folder: IsADirectoryError, an OSError other than missing
    assert machine.describe() == "aarch64, 6 vCPU"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_bytes(INTEL.encode().replace(b"Intel(R)", b"Intel\xae"))  # Latin-1's (R): no UTF-8
    monkeypatch.setattr(machine, "CPUINFO", cpuinfo)
    assert machine.describe() == (
        "Intel\ufffd Xeon(R) Processor (family 6, model 167; AVX-512, AVX-512 VNNI, AMX), 6 vCPU"
    )
