"""The C++ compiler that builds simulators: clang, from the `ziglang` wheel (`zig c++`).

Measured on the shared MobileNet-v1 at FINN's ZCU104 folding (the design cut in two, 2 frames,
the same Verilog, interleaved runs on this 2-core machine, median kcycles/s): g++ 12 -O2 221 against
379 for zig's clang 22 -O2 built for x86-64-v3 (1.71x; faster in each of 5 rounds), 334 for the
host's own CPU model (znver3) and, in another set, 187 against g++'s 180 for the baseline x86-64.
clang's code for AVX2/BMI2 is what pays (g++ with -march=x86-64-v3 had measured no faster).
Outputs and cycle counts are the same. So simulators are built for the x86-64 level the host has
(v3 where its CPU has AVX2, BMI1/2, FMA, F16C, LZCNT and MOVBE, else the baseline), not for its
exact model: an executable runs on every machine of that level, which matters to the cluster,
where one build is sent to every node (`cluster.local_versions` names the compiler and level a
node must share).

The wheel is a dependency, so the compiler is the same on every machine, whatever C++ compiler
the system has. Without it (a platform it has no wheel for), the system's `c++` builds them.
zig keeps its own caches (its C++ runtime, built once per CPU level) under finn-rtl's cache.
"""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from ..cache import cache_dir as finn_rtl_cache

# The x86-64-v3 microarchitecture level's features, as /proc/cpuinfo names them (`abm`: LZCNT).
X86_64_V3_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})


def cpu_level(cpuinfo: str | None = None) -> str:
    """The CPU target simulators are built for: `x86_64_v3` where this x86-64 host has every
    feature of that level, else `baseline` (the architecture's first level, on any machine)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "baseline"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "baseline"
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "x86_64_v3" if X86_64_V3_FLAGS <= set(line.partition(":")[2].split()) else "baseline"
    return "baseline"


@functools.cache
def zig() -> Path | None:
    """The `zig` binary of the ziglang wheel, or None without the wheel."""
    try:
        import ziglang
    except ImportError:
        return None
    binary = Path(ziglang.__file__).parent / "zig"
    return binary if binary.is_file() else None


def zig_flags() -> str:
    """The CPU level, and no sanitizers: zig's clang checks for undefined behaviour in unoptimised
    (-O0) code by default and stops at the first, and Verilator's C++ shifts negative values left
    (its sign extensions: defined since C++20, not in the C++ it compiles as)."""
    return f"-mcpu={cpu_level()} -fno-sanitize=all"


@functools.cache
def cxx() -> str:
    """The compiler command line make runs (`CXX` and `LINK` of Verilator's makefiles)."""
    binary = zig()
    return f"{binary} c++ {zig_flags()}" if binary else "c++"


@functools.cache
def identity() -> str:
    """The compiler, its version and the CPU level (not where it is installed): part of every
    build's cache key, and what every node of a cluster must share with the driver."""
    binary = zig()
    command = [str(binary), "version"] if binary else ["c++", "--version"]
    try:
        version = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        version = "unknown"
    return f"zig {version} c++ {zig_flags()}" if binary else f"system c++ ({version})"


def make_options() -> list[str]:
    """Verilator's makefiles' variables for this compiler."""
    return [f"CXX={cxx()}", f"LINK={cxx()}"]


def environment(env: dict[str, str]) -> dict[str, str]:
    """`env` with zig's caches under finn-rtl's (FINN_RTL_CACHE moves them too)."""
    if zig() is not None:
        env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(finn_rtl_cache("zig")))
    return env
