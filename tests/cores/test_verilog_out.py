"""The Verilog for Verilator: its passes proven to keep behaviour; long lines broken after commas,
never inside strings, comments or macros."""
import re
import subprocess

import pytest

from finn_rtl.cores.verilog_out import wrap_long_lines


def test_a_wide_concatenation_is_broken_after_commas_into_short_lines():
    gather = "  assign g = { " + ", ".join(f"p[{i}]" for i in range(8191, -1, -8)) + " };"
    text = "module m;\n" + gather + "\nendmodule\n"
    wrapped = wrap_long_lines(text, longest=100)
    assert max(len(line) for line in wrapped.split("\n")) < 120
    assert wrapped.replace("\n", "") == text.replace("\n", "")  # only newlines were added, after commas
    assert all(line.endswith(",") for line in wrapped.split("\n")[1:-3])


def test_strings_comments_and_macros_are_left_whole():
    long_string = '  initial $display("' + ", ".join(["x"] * 200) + '", a, b);'
    comment = "  assign y = a; // " + ", ".join(["c"] * 200)
    macro = "`define LIST " + ", ".join(["m"] * 200)
    for line in (long_string, comment, macro):
        wrapped = wrap_long_lines(line, longest=50)
        assert wrapped.replace("\n", "") == line
        if line is long_string:  # broken only after the string's end
            assert wrapped.split("\n")[0].endswith('",')
        else:
            assert wrapped == line
    assert wrap_long_lines("short, line", longest=50) == "short, line"


def _small_mvtu():
    """Lanes with pipeline registers, thresholds, weight and threshold memories, a handshake."""
    import numpy as np

    from finn_rtl.cores.mvtu import MVTU
    from finn_rtl.graph.datatypes import QType
    from finn_rtl.graph.specs import MVTUSpec

    rng = np.random.default_rng(3)
    weights = rng.integers(-8, 8, (4, 8))
    unthresholded = MVTUSpec("t", weights, QType(4, False), QType(4, True), pe=2, simd=4)
    lo, hi = unthresholded.acc_range
    thresholds = np.sort(rng.integers(lo.min() - 1, hi.max() + 2, (4, 3)), axis=1)
    return MVTU(MVTUSpec("t", weights, QType(4, False), QType(4, True), thresholds=thresholds,
                         output_type=QType(2, False), out_base=0, pe=2, simd=4))


def _small_fifo():
    from finn_rtl.cores.fifo import StreamFIFO

    return StreamFIFO(12, 16)


def _verilog(component, passes: str) -> str:
    from amaranth.back import rtlil

    from finn_rtl.cores.verilog_out import rtlil_to_verilog

    return rtlil_to_verilog(rtlil.convert(component, name="dut", emit_src=False), passes)


AMARANTH_PASSES = "proc -nomux -norom; memory_collect"  # Amaranth's own `verilog.convert`


@pytest.mark.parametrize("make", [_small_mvtu, _small_fifo], ids=["mvtu", "fifo"])
def test_enable_registers_are_proven_equivalent_to_amaranths_verilog(make, tmp_path):
    """The passes that write `if (en) q <= d` change no behaviour: Yosys proves the Verilog equal,
    register by register, to what Amaranth's own passes write from the same RTLIL."""
    from finn_rtl.cores.verilog_out import PASSES
    from finn_rtl.resources.synthesis import yosys_command

    (tmp_path / "gold.v").write_text(_verilog(make(), AMARANTH_PASSES))
    ours = _verilog(make(), PASSES)
    (tmp_path / "gate.v").write_text(ours)
    assert "else if (" in ours  # enables are on the flip-flops
    script = ("read_verilog gold.v; rename dut gold; read_verilog gate.v; rename dut gate; "
              "proc; memory -nomap; opt_clean; equiv_make gold gate equiv; hierarchy -top equiv; "
              "equiv_simple -seq 2; equiv_induct -seq 2; equiv_status -assert")
    run = subprocess.run([*yosys_command(), "-p", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    matched = re.search(r"Found (\d+) \$equiv cells in equiv", run.stdout)
    assert matched and int(matched.group(1)) > 50  # signals were paired up, not an empty proof
    assert "Equivalence successfully proven!" in run.stdout
