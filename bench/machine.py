"""The machine a run was measured on, as the headers of `make bench` and `make loadtest` name it.

/proc/cpuinfo's "model name" alone does not tell hosts apart that give different figures: "AMD EPYC" was printed
for a Zen 2 (AVX2 only) and a Zen 4 (AVX-512, VNNI), and ONNX Runtime's kernels, its int8 ones above all, take a
different path on each. So the header also gives the family and model and the vector extensions they use.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def first_processor(cpuinfo: str) -> dict[str, str]:
    """The fields of the first block of /proc/cpuinfo (the first processor's), keys as written ("model name")."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    return fields


def labelled(fields: dict[str, str], labels: dict[str, str]) -> list[str]:
    return [f"{label} {fields[key]}" for key, label in labels.items() if fields.get(key)]


# What MLAS (ONNX Runtime's platform.cpp) takes for AVX-512 in its int8 kernels, and what its AMX kernels need.
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})
AMX_INT8 = frozenset({"amx_tile", "amx_int8"})


def x86_extensions(flags: set[str]) -> list[str]:
    # What ONNX Runtime's MLAS dispatches on: AVX2 (fp32 and int8 without VNNI), AVX-512, the VNNI int8 dot
    # products (AVX-512 or the VEX AVX-VNNI of CPUs without AVX-512) and AMX tiles. AVX2 goes unsaid beside
    # AVX-512 (every AVX-512 CPU has it); "no AVX-512" is said outright, as it is what sets a host's figures apart.
    # On AVX-512 with BW, DQ and VL, MLAS's AVX-512 int8 kernel replaces the AVX-VNNI one, so a virtual CPU showing
    # AVX-VNNI but hiding AVX-512 VNNI runs without VNNI; and AMX tiles without AMX-INT8 carry no int8 kernel.
    if "avx512f" in flags:
        found = ["AVX-512"]
        core = flags >= AVX512_CORE
        if "avx512_vnni" in flags and core:
            found.append("AVX-512 VNNI")
        elif "avx_vnni" in flags and not core:
            found.append("AVX-VNNI")
    else:
        found = ["AVX2"] if "avx2" in flags else ["no AVX2"]
        if "avx_vnni" in flags:
            found.append("AVX-VNNI")
        found.append("no AVX-512")
    if flags >= AMX_INT8:
        found.append("AMX")
    return found


def arm_extensions(features: set[str]) -> list[str]:
    # The int8 dot products ONNX Runtime's ARM kernels use (SDOT, then SMMLA), and SVE.
    found = [name for flag, name in (("asimddp", "dot product"), ("i8mm", "I8MM"), ("sve", "SVE")) if flag in features]
    return found or ["no dot product"]


def cpu_description(cpuinfo: str | None, cpus: int | None, arch: str) -> str:
    """`"AMD EPYC (family 23, model 49; AVX2, no AVX-512), 2 vCPU"` from /proc/cpuinfo's text (None: unreadable),
    os.cpu_count() (None: unknown) and platform.machine(), the name when cpuinfo has no "model name" (aarch64).
    Whatever the text, a description: a header that raises would lose the run it heads."""
    fields = first_processor(cpuinfo or "")
    name = fields.get("model name") or arch or "unknown CPU"
    details: list[str] = []
    extensions: list[str] = []
    if "cpu family" in fields or "flags" in fields:  # x86
        details = labelled(fields, {"cpu family": "family", "model": "model"})
        if "flags" in fields:
            extensions = x86_extensions(set(fields["flags"].split()))
    elif "CPU implementer" in fields:  # ARM
        details = labelled(fields, {"CPU implementer": "implementer", "CPU part": "part"})
        if "Features" in fields:
            extensions = arm_extensions(set(fields["Features"].split()))
    inside = ", ".join(details)
    if extensions:
        inside = f"{inside}; {', '.join(extensions)}" if inside else ", ".join(extensions)
    # os.cpu_count() counts logical CPUs (hyper-threads), what a cloud sells as vCPUs: "cores" said twice the
    # physical ones on a host with two threads a core.
    count = f"{cpus} vCPU" if cpus else "vCPU count unknown"
    return f"{name} ({inside}), {count}" if inside else f"{name}, {count}"


def describe() -> str:
    """This machine's cpu_description."""
    try:
        cpuinfo = CPUINFO.read_text(errors="replace")
    except OSError:
        cpuinfo = None
    return cpu_description(cpuinfo, os.cpu_count(), platform.machine())
