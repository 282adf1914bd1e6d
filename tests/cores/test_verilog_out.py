"""Long generated Verilog lines are broken after commas, never inside strings, comments or macros."""
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
