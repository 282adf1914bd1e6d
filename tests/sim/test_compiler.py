"""The simulators' C++ compiler: zig's clang for the host's x86-64 level, in every cache key."""
import subprocess

from finn_rtl.sim import compiler, verilator

V3 = "flags\t\t: fpu sse2 ssse3 sse4_1 sse4_2 popcnt avx avx2 bmi1 bmi2 f16c fma abm movbe xsave\n"


def test_cpu_level_needs_every_v3_feature(monkeypatch):
    monkeypatch.setattr(compiler.platform, "machine", lambda: "x86_64")
    assert compiler.cpu_level("processor\t: 0\n" + V3) == "x86_64_v3"
    assert compiler.cpu_level(V3.replace(" bmi2", "")) == "baseline"  # e.g. a pre-Haswell or an emulated CPU
    assert compiler.cpu_level("processor\t: 0\n") == "baseline"
    monkeypatch.setattr(compiler.platform, "machine", lambda: "aarch64")
    assert compiler.cpu_level(V3) == "baseline"


def test_zig_builds_for_the_level_and_names_no_install_path():
    assert compiler.zig() is not None, "the ziglang wheel is a dependency"
    assert compiler.cxx() == f"{compiler.zig()} c++ -mcpu={compiler.cpu_level()} -fno-sanitize=all"
    assert compiler.make_options() == [f"CXX={compiler.cxx()}", f"LINK={compiler.cxx()}"]
    identity = compiler.identity()
    assert identity.startswith("zig 0.") and f"-mcpu={compiler.cpu_level()}" in identity
    assert str(compiler.zig().parent) not in identity  # nodes may install it elsewhere


def test_zig_caches_under_finn_rtl_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FINN_RTL_CACHE", str(tmp_path))
    monkeypatch.delenv("ZIG_GLOBAL_CACHE_DIR", raising=False)
    assert verilator.verilator_env()["ZIG_GLOBAL_CACHE_DIR"] == str(tmp_path / "zig")
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", str(tmp_path / "mine"))
    assert verilator.verilator_env()["ZIG_GLOBAL_CACHE_DIR"] == str(tmp_path / "mine")


def test_the_compiler_is_in_the_build_key(monkeypatch, tmp_path):
    """Another compiler (or CPU level) builds anew, never takes an executable from the cache
    that it did not build: a simulator for x86-64-v3 would not start on a baseline CPU."""
    zig_cache = verilator.verilator_env()["ZIG_GLOBAL_CACHE_DIR"]  # zig's C++ runtime, built once
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", zig_cache)
    monkeypatch.setenv("FINN_RTL_CACHE", str(tmp_path))
    verilog = ("module t(input clk, input rst, input [7:0] s_axis_tdata, input s_axis_tvalid,"
               " output s_axis_tready, output [7:0] m_axis_tdata, output m_axis_tvalid, input m_axis_tready);\n"
               "assign m_axis_tdata = s_axis_tdata; assign m_axis_tvalid = s_axis_tvalid;"
               " assign s_axis_tready = m_axis_tready;\nendmodule\n")
    first = verilator.compile_verilog(verilog, "t", cxx_opt=verilator.FAST_BUILD)
    assert not first.cached and first.executable.is_file()
    assert verilator.compile_verilog(verilog, "t", cxx_opt=verilator.FAST_BUILD).cached
    monkeypatch.setattr(compiler, "identity", lambda: "zig 0.17.1 c++ -mcpu=another")
    other = verilator.compile_verilog(verilog, "t", cxx_opt=verilator.FAST_BUILD)
    assert not other.cached and other.executable != first.executable
    # Verilator's runtime objects are kept per compiler too: two sets now
    assert len(list(tmp_path.glob("verilator/runtime-*"))) == 2


def test_simulators_are_built_for_the_cpu_level(tmp_path):
    """What zig builds for the level uses its instructions (AVX2's ymm registers for v3) and
    for the baseline does not."""
    source = tmp_path / "sum.cpp"
    source.write_text("float sum(const float *x, int n) { float s = 0; for (int i = 0; i < n; ++i) s += x[i] * x[i];"
                      " return s; }\n")
    for level, ymm in (("x86_64_v3", True), ("baseline", False)):
        assembly = tmp_path / f"{level}.s"
        subprocess.run([str(compiler.zig()), "c++", f"-mcpu={level}", "-O2", "-ffast-math", "-S", "-o", str(assembly),
                        str(source)], capture_output=True, check=True, env=verilator.verilator_env())
        assembly = assembly.read_text()
        assert ("%ymm" in assembly) is ymm, level


def test_unoptimised_code_does_not_stop_at_undefined_behaviour(tmp_path):
    """Verilator's sign extensions shift negative values left; zig's clang would trap there in
    -O0 code (the FAST_BUILD of short runs, and every build's initial blocks) by default."""
    source = tmp_path / "shift.cpp"
    source.write_text("#include <cstdio>\n"
                      "int main(int argc, char **) { int x = -argc; std::printf(\"%d\\n\", x << 4); }\n")
    program = tmp_path / "shift"
    subprocess.run([*compiler.cxx().split(), "-O0", "-o", str(program), str(source)], check=True,
                   env=verilator.verilator_env())
    assert subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout == "-16\n"


def test_without_the_wheel_the_system_compiler_builds(monkeypatch):
    monkeypatch.setattr(compiler, "zig", lambda: None)
    compiler.cxx.cache_clear()
    compiler.identity.cache_clear()
    try:
        assert compiler.make_options() == ["CXX=c++", "LINK=c++"]
        assert compiler.identity().startswith("system c++ (")
        assert "ZIG_GLOBAL_CACHE_DIR" not in compiler.environment({})
    finally:
        compiler.cxx.cache_clear()
        compiler.identity.cache_clear()
